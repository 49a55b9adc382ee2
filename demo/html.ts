/**
 * Tiny HTML helpers for the demo's pages: a tagged template that escapes every
 * interpolated value unless it is already markup (`Markup`), and one page layout.
 * No script anywhere: plain links and forms.
 */
export class Markup {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

type Value = Markup | string | number | undefined | null | false | readonly Value[];

function render(value: Value): string {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Markup) return value.value;
  if (Array.isArray(value)) return value.map((v: Value) => render(v)).join('');
  return escapeHtml(String(value));
}

/** html`<p>${text}</p>`: interpolations are escaped; nested html`` results are kept as markup. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Markup {
  let out = strings[0] ?? '';
  values.forEach((value, index) => { out += render(value) + (strings[index + 1] ?? ''); });
  return new Markup(out);
}

export interface Theme {
  /** the brand shown in the header */
  readonly brand: string;
  /** main colour of the header and primary buttons */
  readonly colour: string;
}

const STYLE = (theme: Theme) => `
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;background:#f4f6fb}
header{background:${theme.colour};color:#fff;padding:14px 24px;display:flex;align-items:center;gap:12px}
header a{color:#fff;text-decoration:none;font-weight:700;font-size:18px}
header .tag{font-size:12px;opacity:.85;border:1px solid rgba(255,255,255,.6);border-radius:999px;padding:1px 8px}
main{max-width:760px;margin:24px auto;padding:0 16px}
.card{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(16,24,40,.12);padding:20px 24px;margin:0 0 16px}
h1{font-size:26px;margin:0 0 8px}
h2{font-size:19px;margin:0 0 6px}
p{margin:0 0 12px}
.muted{color:#5b6475;font-size:14px}
.lead{font-size:18px}
button,.button{display:inline-block;font:inherit;font-weight:600;border:0;border-radius:8px;padding:10px 18px;cursor:pointer;text-decoration:none}
.primary{background:${theme.colour};color:#fff}
.secondary{background:#e7eaf3;color:#1d2433}
form.inline{display:inline-block;margin:0 8px 8px 0}
table{width:100%;border-collapse:collapse;font-size:15px}
th,td{text-align:left;padding:8px 4px;border-bottom:1px solid #e7eaf3}
td.amount,th.amount{text-align:right;font-variant-numeric:tabular-nums}
.balance{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.error{border-left:6px solid #c0392b}
.error h1{color:#c0392b}
.ok{border-left:6px solid #1e8e5a}
code{background:#eef1f7;border-radius:4px;padding:1px 5px;font-size:14px}
ul.accounts{list-style:none;padding:0;margin:0}
ul.accounts li{display:flex;justify-content:space-between;align-items:center;gap:12px;padding:12px 0;border-bottom:1px solid #e7eaf3}
ul.accounts li:last-child{border-bottom:0}
footer{max-width:760px;margin:0 auto 24px;padding:0 16px}
`;

export function layout(theme: Theme, title: string, body: Markup, footer?: Markup): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · ${escapeHtml(theme.brand)}</title>
<style>${STYLE(theme)}</style>
</head>
<body>
<header><a href="/">${escapeHtml(theme.brand)}</a><span class="tag">demo</span></header>
<main>
${body.value}
</main>
${footer === undefined ? '' : `<footer class="muted">${footer.value}</footer>`}
</body>
</html>
`;
}
