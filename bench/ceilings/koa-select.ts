/**
 * Ceiling for introspection: a bare Koa route doing one primary-key SELECT on the same
 * database through a `pg` pool of the same size as Portcullis's, the way an ordinary Koa
 * service reads a row (an unnamed parameterised statement).
 * Env: PORT, DATABASE_URL, POOL_MAX, ROW_ID (a users.id that exists).
 */
import Koa from 'koa';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_MAX ?? 10) });
const rowId = process.env.ROW_ID ?? '';
const app = new Koa();
app.use(async (ctx) => {
  if (ctx.path === '/ready') { ctx.body = 'ok'; return; }
  const { rows } = await pool.query<{ id: string; username: string }>('select id, username from users where id = $1', [rowId]);
  ctx.body = { active: rows.length === 1, sub: rows[0]?.id };
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { server.close(); void pool.end().then(() => process.exit(0)); });
