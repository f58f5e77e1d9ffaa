/**
 * `deno task user:list [--json]`: prints every user with their role and when
 * they were created and last changed, as a table, or as JSON for scripts.
 * No password hash is ever printed.
 */
import { configOrFail, parseCliArgs } from "../lib/cli/cli.ts";
import { openKv } from "../lib/store/kv.ts";
import { listUsers } from "../lib/auth/users.ts";

const USAGE = "usage: deno task user:list [--json]";

const parsed = parseCliArgs(USAGE, "list the users", { json: { type: "boolean" } });
const fail: (message: string) => never = parsed.fail;
if (parsed.positionals.length > 0) {
  fail(
    `Cannot list the users as no NAME is taken: current value is ${
      JSON.stringify(parsed.positionals.join(" "))
    }`,
  );
}
const config = configOrFail(fail);
const kv = await openKv(config.kvPath);
try {
  const users = await listUsers(kv);
  if (parsed.values.json) {
    console.log(JSON.stringify(
      users.map((u) => ({
        name: u.name,
        role: u.role,
        createdAt: new Date(u.createdAt).toISOString(),
        updatedAt: new Date(u.updatedAt).toISOString(),
      })),
    ));
  } else if (users.length === 0) {
    console.log("No users yet: create one with deno task user:add NAME --role admin");
  } else {
    const rows = [
      ["NAME", "ROLE", "CREATED (UTC)", "CHANGED (UTC)"],
      ...users.map((u) => [u.name, u.role, utc(u.createdAt), utc(u.updatedAt)]),
    ];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const row of rows) {
      console.log(row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
    }
  }
} finally {
  kv.close();
}

function utc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ");
}
