/**
 * `deno task token --sub NAME --role admin --ttl 600`: prints an access token
 * signed with the configured secret (JWT_SECRET, or the one kept in KV).
 */
import { parseArgs } from "node:util";
import { configOrFail, usageError } from "../lib/cli/cli.ts";
import { openKv } from "../lib/store/kv.ts";
import { createLogger } from "../lib/log.ts";
import { resolveJwtSecret } from "../lib/auth/secret.ts";
import { signAccessToken, tokenKey } from "../lib/auth/tokens.ts";

const USAGE = "usage: deno task token --sub NAME [--role admin|viewer] [--ttl SECONDS]";

const fail: (message: string) => never = usageError(USAGE);

let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: {
      sub: { type: "string" },
      role: { type: "string", default: "admin" },
      ttl: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (error) {
  fail(`Cannot mint a token: ${(error as Error).message}`);
}
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (!args.sub) fail("Cannot mint a token as --sub is missing");
const config = configOrFail(fail);
const ttl = args.ttl === undefined ? config.accessTokenTtlS : Number(args.ttl);
if (!Number.isInteger(ttl) || ttl < 1 || ttl > 31_536_000) {
  fail(
    `Cannot mint a token as --ttl must be whole seconds from 1 to 31536000: current value is ${
      JSON.stringify(args.ttl)
    }`,
  );
}
// The role is not checked here on purpose: tests mint unknown roles to see them refused.
const kv = await openKv(config.kvPath);
try {
  const secret = await resolveJwtSecret(
    kv,
    config.jwtSecret,
    createLogger({
      write: (line) => console.error(line),
    }),
  );
  const key = await tokenKey(secret, config.jwtIssuer, config.jwtAudience);
  const { token } = await signAccessToken(key, { sub: args.sub, role: args.role!, ttlS: ttl });
  console.log(token);
} finally {
  kv.close();
}
