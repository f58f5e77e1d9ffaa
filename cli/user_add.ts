/**
 * `deno task user:add NAME --role admin|viewer`: creates a user, or resets
 * the role and password of an existing one (ending every session and token
 * of theirs, on every instance). The password comes from
 * `LOOKOUT_PASSWORD`, else from a prompt that does not echo, else from one
 * line of standard input.
 */
import { configOrFail, parseCliArgs } from "../lib/cli/cli.ts";
import { openKv } from "../lib/store/kv.ts";
import { MAX_PASSWORD_CHARS } from "../lib/auth/passwords.ts";
import { type Role, ROLES } from "../shared/protocol.ts";
import { putUser, UserName } from "../lib/auth/users.ts";
import { readPassword } from "../lib/cli/password_input.ts";

const USAGE = "usage: deno task user:add NAME [--role admin|viewer]";

const parsed = parseCliArgs(USAGE, "add the user", { role: { type: "string", default: "admin" } });
const fail: (message: string) => never = parsed.fail;
const [name, ...extra] = parsed.positionals;
if (!name || extra.length > 0) fail("Cannot add the user as exactly one NAME is needed");
const checkedName = UserName.safeParse(name);
if (!checkedName.success) {
  fail(
    `Cannot add the user as NAME ${checkedName.error.issues[0].message}: current value is ${
      JSON.stringify(name)
    }`,
  );
}
const role = parsed.values.role as Role;
if (!ROLES.includes(role)) {
  fail(
    `Cannot add the user as --role must be admin or viewer: current value is ${
      JSON.stringify(role)
    }`,
  );
}
const config = configOrFail(fail);
const password = await readPassword({ prompt: "Password: ", confirm: true });
if (password === null) fail("Cannot save the user as the two passwords differ");
if (password.length < 8 || password.length > MAX_PASSWORD_CHARS) {
  fail(
    `Cannot add the user as the password must be 8 to ${MAX_PASSWORD_CHARS} characters: it has ${password.length}`,
  );
}
const kv = await openKv(config.kvPath);
try {
  const { created } = await putUser(kv, { name, role, password });
  console.log(
    created
      ? `Created ${role} ${name}`
      : `Reset ${role} ${name}: every session and token ${name} had is revoked`,
  );
} finally {
  kv.close();
}
