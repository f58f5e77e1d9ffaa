/**
 * `deno task user:add NAME --role admin|viewer`: creates a user, or resets
 * the role and password of an existing one. The password comes from
 * `LOOKOUT_PASSWORD`, else from a prompt that does not echo, else from one
 * line of standard input.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { openKv } from "../lib/kv.ts";
import { MAX_PASSWORD_CHARS } from "../lib/passwords.ts";
import { type Role, ROLES } from "../lib/protocol.ts";
import { putUser, UserName } from "../lib/users.ts";

const USAGE = "usage: deno task user:add NAME [--role admin|viewer]";

function fail(message: string): never {
  console.error(message);
  console.error(USAGE);
  Deno.exit(2);
}

/** Reads a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const encoder = new TextEncoder();
  await Deno.stderr.write(encoder.encode(question));
  Deno.stdin.setRaw(true);
  const chars: string[] = [];
  const buf = new Uint8Array(1);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const c = buf[0];
      if (c === 3) {
        // Ctrl-C: Deno.exit skips `finally`, so give the terminal back first.
        Deno.stdin.setRaw(false);
        Deno.exit(130);
      }
      if (c === 13 || c === 10) break;
      if (c === 127 || c === 8) chars.pop();
      else chars.push(String.fromCharCode(c));
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(Uint8Array.from(chars.map((ch) => ch.charCodeAt(0))));
}

async function readLine(): Promise<string> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text.split(/\r?\n/)[0];
}

async function readPassword(): Promise<string> {
  const fromEnv = Deno.env.get("LOOKOUT_PASSWORD");
  if (fromEnv) return fromEnv;
  if (Deno.stdin.isTerminal()) {
    const first = await promptHidden("Password: ");
    const again = await promptHidden("Again: ");
    if (first !== again) fail("Cannot save the user as the two passwords differ");
    return first;
  }
  return await readLine();
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { role: { type: "string", default: "admin" }, help: { type: "boolean", short: "h" } },
  });
} catch (error) {
  fail(`Cannot add the user: ${(error as Error).message}`);
}
if (parsed.values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
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
let config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (error) {
  if (error instanceof ConfigError) fail(error.message);
  throw error;
}
const password = await readPassword();
if (password.length < 8 || password.length > MAX_PASSWORD_CHARS) {
  fail(
    `Cannot add the user as the password must be 8 to ${MAX_PASSWORD_CHARS} characters: it has ${password.length}`,
  );
}
const kv = await openKv(config.kvPath);
try {
  const { created } = await putUser(kv, { name, role, password });
  console.log(`${created ? "Created" : "Reset"} ${role} ${name}`);
} finally {
  kv.close();
}
