/**
 * scripts/build.ts run as a real process into a temp directory: `--if-stale`
 * keeps a build that is newer than every source and rebuilds one that is
 * older, so `deno task start` never serves islands older than their code.
 */
import assert from "node:assert/strict";

const BUILD = new URL("../scripts/build.ts", import.meta.url).pathname;

async function build(...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BUILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `build.ts ${args.join(" ")} failed:\n${text}`);
  return text;
}

Deno.test("build --if-stale keeps a fresh build and rebuilds one older than its sources", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout-build-test-" });
  try {
    const manifest = `${dir}/manifest.json`;
    await build("--out", dir);
    const first = (await Deno.stat(manifest)).mtime!.getTime();

    const kept = await build("--if-stale", "--out", dir);
    assert.match(kept, /island assets are up to date/);
    assert.equal((await Deno.stat(manifest)).mtime!.getTime(), first, "a fresh build is kept");

    // A build from 2001 is older than any source in the checkout: as if an
    // island had been edited after the last build.
    const old = new Date("2001-01-01T00:00:00Z");
    await Deno.utime(manifest, old, old);
    const rebuilt = await build("--if-stale", "--out", dir);
    assert.match(rebuilt, /island assets are older than \S+: rebuilding/);
    assert.ok((await Deno.stat(manifest)).mtime!.getTime() > old.getTime(), "rebuilt");
    const names = JSON.parse(await Deno.readTextFile(manifest));
    await Deno.stat(`${dir}/${names.js}`);
    await Deno.stat(`${dir}/${names.css}`);

    // --if-missing still builds only when nothing is there.
    await Deno.utime(manifest, old, old);
    const missing = await build("--if-missing", "--out", dir);
    assert.doesNotMatch(missing, /island JS/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
