/**
 * `deno task user:remove NAME`: deletes a user and, in the same commit,
 * revokes every session and token of theirs, so their sockets close with
 * 4403 `revoked` on every instance (each reads the revocation from KV).
 */
import { configOrFail, parseCliArgs } from "../lib/cli/cli.ts";
import { openKv } from "../lib/store/kv.ts";
import { removeUser } from "../lib/auth/users.ts";

const USAGE = "usage: deno task user:remove NAME";

const parsed = parseCliArgs(USAGE, "remove the user", {});
const fail: (message: string) => never = parsed.fail;
const [name, ...extra] = parsed.positionals;
if (!name || extra.length > 0) fail("Cannot remove the user as exactly one NAME is needed");
const config = configOrFail(fail);
const kv = await openKv(config.kvPath);
let removed;
try {
  removed = await removeUser(kv, name);
} finally {
  kv.close();
}
if (removed === null) {
  console.error(
    `Cannot remove the user as there is no user ${
      JSON.stringify(name)
    }: deno task user:list shows who there is`,
  );
  Deno.exit(1);
}
console.log(
  `Removed ${removed.user.role} ${name}: every session and token ${name} had is revoked, and their sockets close on every instance`,
);
