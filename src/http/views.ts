import { Eta } from 'eta';

import { VIEWS_DIR } from '../paths.js';

/** Server-side templates (views/*.eta), HTML-escaped by default. */
export interface Views {
  render(name: string, data: Record<string, unknown>): string;
}

export function createViews(): Views {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: false });
  return { render: (name, data) => eta.render(name, data) };
}
