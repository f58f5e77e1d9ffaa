/**
 * `deno task key:add NAME [--scope ingest|read]`: creates an API key in the
 * configured KV and prints it. This is the only time the key is shown; KV
 * keeps only its hash.
 */
import { configOrFail, parseCliArgs } from "../lib/cli/cli.ts";
import { openKv } from "../lib/store/kv.ts";
import { createApiKey, KEY_SCOPES, type KeyScope, MAX_KEY_NAME } from "../lib/api_keys/store.ts";

const USAGE = "usage: deno task key:add NAME [--scope ingest|read]";

const parsed = parseCliArgs(USAGE, "add the key", { scope: { type: "string", default: "ingest" } });
const fail: (message: string) => never = parsed.fail;
const [name, ...extra] = parsed.positionals;
if (!name || extra.length > 0) fail("Cannot add the key as exactly one NAME is needed");
if (name.trim().length > MAX_KEY_NAME || name.trim().length === 0) {
  fail(
    `Cannot add the key as NAME must be 1 to ${MAX_KEY_NAME} characters: current length is ${name.length}`,
  );
}
const scope = parsed.values.scope as KeyScope;
if (!KEY_SCOPES.includes(scope)) {
  fail(
    `Cannot add the key as --scope must be ingest or read: current value is ${
      JSON.stringify(scope)
    }`,
  );
}
const config = configOrFail(fail);
const kv = await openKv(config.kvPath);
try {
  const { record, key } = await createApiKey(kv, { name, scope });
  console.error(`created key ${record.id} (${record.name}, ${record.scope}); it is shown once:`);
  console.log(key);
} finally {
  kv.close();
}
