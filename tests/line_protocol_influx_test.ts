/**
 * lib/metrics/line_protocol.ts against the real InfluxDB 1.6 (`influxd`,
 * Debian's package): the same lines are written to its `/write` and parsed
 * here, and the two must agree on which lines are refused and on what an
 * accepted line holds. Where they differ on purpose (the documented escapes
 * of `\\`, duplicate fields, unsigned integers) the test says so and checks
 * the difference. Skipped, with a banner, when influxd is not installed.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type LinePoint, parseLineProtocol } from "../lib/metrics/line_protocol.ts";
import { freePort } from "./helpers.ts";

const decoder = new TextDecoder();

async function findInfluxd(): Promise<string | null> {
  const candidates = [Deno.env.get("INFLUXD_PATH"), "/usr/bin/influxd"].filter((p) => p);
  for (const path of candidates as string[]) {
    if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
  }
  return null;
}

const INFLUXD = await findInfluxd();
if (!INFLUXD) {
  console.warn(
    `\n${"!".repeat(72)}\n!! SKIPPED: line protocol against InfluxDB, influxd not installed.\n` +
      `!! Install it (apt-get install influxdb) or set INFLUXD_PATH.\n${"!".repeat(72)}\n`,
  );
}

interface Influx extends AsyncDisposable {
  /** Writes `body`; the HTTP status. */
  write(body: string): Promise<number>;
  /** Every row of `measurement`, as InfluxDB's JSON gives them: column name to value. */
  rows(measurement: string): Promise<Record<string, unknown>[]>;
}

/** influxd on free loopback ports with everything in a temporary folder, and a database `t`. */
async function startInflux(): Promise<Influx> {
  const dir = await Deno.makeTempDir({ prefix: "lookout_influx_" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/influxdb.conf`,
    `reporting-enabled = false
bind-address = "127.0.0.1:${freePort()}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
[logging]
  level = "error"
  suppress-logo = true
`,
  );
  const child = new Deno.Command(INFLUXD!, {
    args: ["run", "-config", `${dir}/influxdb.conf`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    child.kill("SIGTERM");
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`${base}/ping`).then(async (r) => {
      await r.body?.cancel();
      return r.status === 204;
    }, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error("Cannot start influxd as /ping did not answer in 20 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // /ping can answer before the meta store takes a database: create it
  // until a write to it is no longer refused as "database not found" (404).
  for (const deadline = Date.now() + 20_000;;) {
    const created = await fetch(`${base}/query?q=${encodeURIComponent("CREATE DATABASE t")}`, {
      method: "POST",
    });
    await created.body?.cancel();
    const probe = await fetch(`${base}/write?db=t`, { method: "POST", body: "ready v=1 1" });
    await probe.body?.cancel();
    if (created.ok && probe.status === 204) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Cannot create database t: CREATE ${created.status}, write ${probe.status}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    async write(body) {
      const res = await fetch(`${base}/write?db=t`, { method: "POST", body });
      await res.body?.cancel();
      return res.status;
    },
    async rows(measurement) {
      const q = `SELECT * FROM "${measurement}"`;
      const res = await fetch(`${base}/query?db=t&epoch=ns&q=${encodeURIComponent(q)}`);
      const body = JSON.parse(decoder.decode(new Uint8Array(await res.arrayBuffer())));
      const series = body.results?.[0]?.series?.[0];
      if (!series) return [];
      return series.values.map((row: unknown[]) =>
        Object.fromEntries(series.columns.map((c: string, i: number) => [c, row[i]]))
      );
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** Whether the parser accepts `line` (one line, one result). */
function accepts(line: string): boolean {
  const results = parseLineProtocol(line);
  assert.equal(results.length, 1, line);
  return results[0].ok;
}

Deno.test({
  name: "parseLineProtocol() refuses and accepts the lines InfluxDB 1.6 refuses and accepts",
  ignore: !INFLUXD,
  async fn() {
    await using influx = await startInflux();
    const lines = [
      // Accepted by both.
      "a1 v=1 1",
      'a2,t=x v=1i,s="q",b=t 2',
      'a3 s="with\nnewline" 3',
      'a4 s="quote \\" and backslash \\\\" 4',
      "a5  v=1 5",
      "a6 v=1 6 ",
      "a7 v=.5 7",
      "a8 v=5. 8",
      "a9 v=-1.5e-3 9",
      "a10 v=-9223372036854775808i 10",
      "a11,t=a\\ b\\,c\\=d v=1 11",
      "a\\ 12\\,x v=1 12",
      "a13 v=TRUE,w=False,x=F 13",
      // Refused by both.
      "b1,t=1,t=2 v=1 1",
      "b2,t= v=1 1",
      "b3,=1 v=1 1",
      "b4",
      "b5 =1 1",
      ",t=1 v=1 1",
      "b7 v= 1",
      "b8 v=1 99999999999999999999",
      "b9 v=9223372036854775808i",
      "b10 v=1e400",
      "b11,t=a=b v=1 1",
      "b12,t=1\tv=1 1",
      'b13 v="open',
      "b14 v=1 12ms",
      "b15 v=+1",
      "b16 v=yes",
    ];
    for (const line of lines) {
      const status = await influx.write(line);
      assert.ok(status === 204 || status === 400, `${line}: ${status}`);
      assert.equal(accepts(line), status === 204, `${JSON.stringify(line)}: InfluxDB ${status}`);
    }
    assert.deepEqual(await influx.rows("a3"), [{ time: 3, s: "with\nnewline" }]);
    assert.deepEqual(await influx.rows("a4"), [{ time: 4, s: 'quote " and backslash \\' }]);
  },
});

Deno.test({
  name: "parseLineProtocol() departs from InfluxDB 1.6 only where its docs say so",
  ignore: !INFLUXD,
  async fn() {
    await using influx = await startInflux();
    // A field given twice: InfluxDB keeps the last, the parser refuses the line.
    assert.equal(await influx.write("d1 v=1,v=2 1"), 204);
    assert.deepEqual(await influx.rows("d1"), [{ time: 1, v: 2 }]);
    assert.equal(accepts("d1 v=1,v=2 1"), false);
    // Unsigned integers came after 1.6: it refuses them, the parser (as 2.x) reads them.
    assert.equal(await influx.write("d2 v=1u 1"), 400);
    assert.equal(accepts("d2 v=1u 1"), true);
    // `\\` outside strings: two backslashes for InfluxDB 1.6, one in the documented rule.
    assert.equal(await influx.write("d3,t=x\\\\y v=1 1"), 204);
    assert.deepEqual(await influx.rows("d3"), [{ time: 1, t: "x\\\\y", v: 1 }]);
    const [result] = parseLineProtocol("d3,t=x\\\\y v=1 1");
    assert.ok(result.ok);
    assert.deepEqual(result.point.tags, { t: "x\\y" });
  },
});

Deno.test({
  name: "parseLineProtocol() property: InfluxDB 1.6 stores what the parser reads",
  ignore: !INFLUXD,
  async fn() {
    await using influx = await startInflux();
    // Names with every character that needs escaping but the backslash (above), and
    // disjoint tag and field keys so that InfluxDB's columns name each once.
    const unit = fc.constantFrom("a", "Z", "0", "_", ",", "=", " ", '"', "#", "é");
    const name = (prefix: string) =>
      fc.string({ unit, minLength: 1, maxLength: 6 }).map((s) => prefix + s);
    const escape = (s: string) => s.replace(/[,= ]/g, (c) => `\\${c}`);
    const field = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 })
        .map((v) => String(Object.is(v, -0) ? 0 : v)),
      fc.bigInt(-(2n ** 53n), 2n ** 53n).map((v) => `${v}i`),
      fc.boolean().map(String),
      fc.string({ unit: fc.constantFrom("x", '"', "\\", "\n", " ", ",", "="), maxLength: 6 })
        .map((s) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(name("t"), name("v")), { selector: ([k]) => k, maxLength: 3 }),
        fc.uniqueArray(fc.tuple(name("f"), field), {
          selector: ([k]) => k,
          minLength: 1,
          maxLength: 3,
        }),
        async (tags, fields) => {
          const measurement = `p${n++}`;
          const line = `${measurement}${
            tags.map(([k, v]) => `,${escape(k)}=${escape(v)}`).join("")
          } ${fields.map(([k, v]) => `${escape(k)}=${v}`).join(",")} 1000`;
          const [parsed] = parseLineProtocol(line);
          assert.ok(parsed.ok, line);
          assert.equal(await influx.write(line), 204, line);
          const expected: Record<string, unknown> = { time: 1000 };
          const point: LinePoint = parsed.point;
          for (const [k, v] of Object.entries(point.tags)) expected[k] = v;
          for (const [k, f] of Object.entries(point.fields)) expected[k] = f.value;
          assert.deepEqual(await influx.rows(measurement), [expected], line);
        },
      ),
      { seed: 16, numRuns: 150 },
    );
  },
});
