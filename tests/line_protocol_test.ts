/**
 * lib/metrics/line_protocol.ts: one test per rule, then fast-check properties
 * with fixed seeds: arbitrary points written by a small encoder that follows
 * the line protocol reference parse back to themselves, and arbitrary text
 * never makes the parser throw.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type LineField,
  type LinePoint,
  type LineResult,
  MAX_LINE_BYTES,
  parseLineProtocol,
} from "../lib/metrics/line_protocol.ts";

/** The one point of a one-line body; fails the test when it is not one good point. */
function one(body: string): LinePoint {
  const results = parseLineProtocol(body);
  assert.equal(results.length, 1, JSON.stringify(results, bigints));
  const [result] = results;
  assert.ok(result.ok, result.ok ? "" : result.message);
  return result.point;
}

/** The error message of a one-line body that must be refused. */
function refused(body: string): string {
  const results = parseLineProtocol(body);
  assert.equal(results.length, 1);
  const [result] = results;
  assert.ok(!result.ok, `expected an error for ${JSON.stringify(body)}`);
  return result.message;
}

function bigints(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

Deno.test("parseLineProtocol() reads measurement, tags, every field type and the timestamp", () => {
  assert.deepEqual(
    one('cpu,host=a,region=eu usage=0.5,n=12i,u=7u,s="x",b=t 1700000000000000000'),
    {
      measurement: "cpu",
      tags: { host: "a", region: "eu" },
      fields: {
        usage: { type: "float", value: 0.5 },
        n: { type: "integer", value: 12 },
        u: { type: "uinteger", value: 7 },
        s: { type: "string", value: "x" },
        b: { type: "boolean", value: true },
      },
      timestamp: 1700000000000000000n,
    },
  );
  assert.deepEqual(one("m v=1"), {
    measurement: "m",
    tags: {},
    fields: { v: { type: "float", value: 1 } },
    timestamp: null,
  });
});

Deno.test("parseLineProtocol() skips blank and comment lines and numbers lines from 1", () => {
  const results = parseLineProtocol("# head\n\n  \t\nm v=1\n   # indented comment\nm v=2\n");
  assert.deepEqual(results.map((r) => r.line), [4, 6]);
  assert.deepEqual(parseLineProtocol(""), []);
  assert.deepEqual(parseLineProtocol("\n\n# only comments\n"), []);
});

Deno.test("parseLineProtocol() accepts CRLF line ends", () => {
  const results = parseLineProtocol('m v=1i 5\r\n\r\nm s="a"\r\n');
  assert.equal(results.length, 2);
  assert.ok(results[0].ok && results[1].ok);
  assert.equal(results[0].point.timestamp, 5n);
  assert.deepEqual(results[1].point.fields.s, { type: "string", value: "a" });
  assert.equal(results[1].line, 3);
});

Deno.test("parseLineProtocol() unescapes comma and space in the measurement, not =", () => {
  assert.equal(one("my\\ cpu\\,x\\=y v=1").measurement, "my cpu,x\\=y");
});

Deno.test("parseLineProtocol() unescapes comma, = and space in tag keys, tag values and field keys", () => {
  const point = one("m,a\\ b\\=c\\,d=e\\ f\\=g\\,h x\\ y\\=z\\,w=1");
  assert.deepEqual(point.tags, { "a b=c,d": "e f=g,h" });
  assert.deepEqual(Object.keys(point.fields), ["x y=z,w"]);
});

Deno.test("parseLineProtocol() reads \\\\ as one backslash and other backslashes literally", () => {
  // As the reference's table: \ -> \, \\ -> \, \\\ -> \\, \\\\ -> \\.
  assert.equal(one("a\\b v=1").measurement, "a\\b");
  assert.equal(one("a\\\\b v=1").measurement, "a\\b");
  assert.equal(one("a\\\\\\b v=1").measurement, "a\\\\b");
  assert.equal(one("a\\\\\\\\b v=1").measurement, "a\\\\b");
  // A literal backslash right before a separator is written \\ and ends the element.
  assert.deepEqual(one("m,t=x\\\\,u=y v=1").tags, { t: "x\\", u: "y" });
  const point = one("m,t\\k=a\\b f\\g=1");
  assert.deepEqual(point.tags, { "t\\k": "a\\b" });
  assert.deepEqual(Object.keys(point.fields), ["f\\g"]);
});

Deno.test('parseLineProtocol() reads string fields with \\" and \\\\ and keeps other characters', () => {
  const point = one('m s="a \\"quoted\\" \\\\ back\\slash, = and spaces"');
  assert.deepEqual(point.fields.s, {
    type: "string",
    value: 'a "quoted" \\ back\\slash, = and spaces',
  });
  assert.deepEqual(one('m s=""').fields.s, { type: "string", value: "" });
});

Deno.test("parseLineProtocol() lets a string field span lines, as InfluxDB does", () => {
  const results = parseLineProtocol('m s="one\ntwo\r\nthree",v=1i 9\nm v=2\nbad');
  assert.equal(results.length, 3);
  assert.ok(results[0].ok);
  assert.equal(results[0].line, 1);
  assert.deepEqual(results[0].point.fields.s, { type: "string", value: "one\ntwo\r\nthree" });
  assert.equal(results[0].point.timestamp, 9n);
  assert.equal(results[1].line, 4);
  assert.equal(results[2].line, 5);
  assert.ok(!results[2].ok);
});

Deno.test("parseLineProtocol() reads every boolean spelling", () => {
  for (const word of ["t", "T", "true", "True", "TRUE"]) {
    assert.deepEqual(one(`m b=${word}`).fields.b, { type: "boolean", value: true }, word);
  }
  for (const word of ["f", "F", "false", "False", "FALSE"]) {
    assert.deepEqual(one(`m b=${word}`).fields.b, { type: "boolean", value: false }, word);
  }
  for (const word of ["tRUE", "yes", "True1", "FaLse"]) {
    assert.match(refused(`m b=${word}`), /field "b" must be a float/);
  }
});

Deno.test("parseLineProtocol() reads floats with sign, fraction and exponent", () => {
  const cases: [string, number][] = [
    ["1", 1],
    ["-1.5", -1.5],
    [".5", 0.5],
    ["5.", 5],
    ["1e3", 1000],
    ["1E-3", 0.001],
    ["-2.5e+2", -250],
    ["1.7976931348623157e308", Number.MAX_VALUE],
  ];
  for (const [text, value] of cases) {
    assert.deepEqual(one(`m v=${text}`).fields.v, { type: "float", value }, text);
  }
  for (const text of ["+1", "1e", "1e+", "--1", "1.2.3", "0x10", "NaN", "Infinity", "1_0", "."]) {
    assert.match(refused(`m v=${text}`), /field "v" must be a float, an integer/, text);
  }
  assert.equal(
    refused("m v=1e400"),
    'Cannot parse line 1 as field "v" must be a finite float: at column 5',
  );
});

Deno.test("parseLineProtocol() checks integers against int64 and uintegers against uint64", () => {
  assert.deepEqual(one("m v=-9223372036854775808i").fields.v, {
    type: "integer",
    value: -9223372036854775808,
  });
  assert.deepEqual(one("m v=9223372036854775807i").fields.v.type, "integer");
  assert.deepEqual(one("m v=0000000000000000000000012i").fields.v, { type: "integer", value: 12 });
  assert.deepEqual(one("m v=18446744073709551615u").fields.v.type, "uinteger");
  assert.equal(
    refused("m v=9223372036854775808i"),
    'Cannot parse line 1 as field "v" must fit in a signed 64-bit integer: at column 5',
  );
  assert.match(refused("m v=-9223372036854775809i"), /must fit in a signed 64-bit integer/);
  assert.match(refused("m v=18446744073709551616u"), /must fit in an unsigned 64-bit integer/);
  assert.match(refused(`m v=${"9".repeat(5000)}i`), /must fit in a signed 64-bit integer/);
  for (const text of ["-1u", "1.5i", "i", "u", "1ii", "+1i", "1e3i"]) {
    assert.match(refused(`m v=${text}`), /must be a float, an integer/, text);
  }
});

Deno.test("parseLineProtocol() reads the timestamp as an int64 bigint", () => {
  assert.equal(one("m v=1 -5").timestamp, -5n);
  assert.equal(one("m v=1   9223372036854775807  ").timestamp, 9223372036854775807n);
  assert.equal(one("m v=1 000123").timestamp, 123n);
  assert.equal(
    refused("m v=1 9223372036854775808"),
    "Cannot parse line 1 as the timestamp must fit in a signed 64-bit integer: at column 7",
  );
  assert.equal(
    refused("m v=1 12ms"),
    "Cannot parse line 1 as the timestamp must be an integer: at column 7",
  );
  assert.equal(
    refused("m v=1 12 13"),
    "Cannot parse line 1 as it has text after the timestamp: at column 10",
  );
});

Deno.test("parseLineProtocol() names the line, the element and the column of each refusal", () => {
  const cases: [string, string][] = [
    ["m", "it has no fields: at column 2"],
    ["m ", "it has no fields: at column 3"],
    [",t=1 v=1", "the measurement is empty: at column 1"],
    ["m,=1 v=1", "a tag key is empty: at column 3"],
    ["m,t v=1", 'tag "t" has no "=": at column 4'],
    ["m,t= v=1", 'tag "t" has no value: at column 5'],
    ["m,t=a=b v=1", 'tag "t" has an unescaped "=" in its value: at column 6'],
    ["m,t=1,t=2 v=1", 'tag "t" is given twice: at column 7'],
    ["m =1", "a field key is empty: at column 3"],
    ["m v=1,", "a field key is empty: at column 7"],
    ["m v", 'field "v" has no "=": at column 4'],
    ["m v=", 'field "v" has no value: at column 5'],
    ["m v=,w=1", 'field "v" has no value: at column 5'],
    ["m v=1,v=2", 'field "v" is given twice: at column 7'],
    ['m v="abc', 'field "v" has a string without its closing quote: at column 5'],
    ['m v="a"b', 'field "v" has text after its closing quote: at column 8'],
  ];
  for (const [body, tail] of cases) {
    assert.equal(refused(body), `Cannot parse line 1 as ${tail}`, body);
  }
  const results = parseLineProtocol("m v=1\n\nm v=\nm v=2");
  assert.deepEqual(
    results.map((r) => (r.ok ? r.line : r.message)),
    [1, 'Cannot parse line 3 as field "v" has no value: at column 5', 4],
  );
});

Deno.test("parseLineProtocol() keeps good lines around a bad one", () => {
  const results = parseLineProtocol("m v=1\nm v=oops\nm v=3");
  assert.deepEqual(results.map((r) => r.ok), [true, false, true]);
});

Deno.test("parseLineProtocol() cuts a hostile name in its message", () => {
  const message = refused(`m ${"k".repeat(10_000)}=`);
  assert.ok(message.length < 200, message);
  assert.match(message, /field "k{64}\.\.\." has no value/);
});

Deno.test("parseLineProtocol() refuses a line over 64 KiB of UTF-8 and parses the next", () => {
  const prefix = 'm s="';
  const exact = prefix + "x".repeat(MAX_LINE_BYTES - prefix.length - 1) + '"';
  assert.equal(new TextEncoder().encode(exact).length, MAX_LINE_BYTES);
  assert.equal((one(exact).fields.s as { value: string }).value.length, MAX_LINE_BYTES - 6);
  const over = prefix + "x".repeat(MAX_LINE_BYTES - prefix.length) + '"';
  const results = parseLineProtocol(`${over}\nm v=1`);
  assert.deepEqual(results[0], {
    ok: false,
    line: 1,
    message: `Cannot parse line 1 as it is longer than ${MAX_LINE_BYTES} bytes: current length is ${
      MAX_LINE_BYTES + 1
    }`,
  });
  assert.ok(results[1].ok);
  // Counted in UTF-8 bytes: 30,000 two-byte characters pass 64 KiB in fewer units.
  const wide = `m s="${"é".repeat(33_000)}"`;
  assert.ok(wide.length < MAX_LINE_BYTES);
  assert.match(refused(wide), /longer than 65536 bytes: current length is 66006/);
  const astral = `m s="${"😀".repeat(16_400)}"`;
  assert.match(refused(astral), /current length is 65606/);
});

Deno.test("parseLineProtocol() keeps __proto__ and constructor as plain keys", () => {
  const point = one("m,__proto__=x,constructor=y __proto__=1i,toString=t");
  assert.equal(Object.getPrototypeOf(point.tags), Object.prototype);
  assert.deepEqual(Object.keys(point.tags), ["__proto__", "constructor"]);
  assert.equal(point.tags["__proto__"], "x");
  assert.deepEqual(Object.keys(point.fields), ["__proto__", "toString"]);
});

Deno.test("parseLineProtocol() stays linear on hostile bodies of 1 MiB", () => {
  // Lines just under 64 KiB, so each is parsed rather than refused for its length, 16 of them.
  const lines = (line: string) => Array(16).fill(line.slice(0, 60_000)).join("\n");
  const bodies = [
    lines("\\".repeat(60_000)),
    lines('"'.repeat(60_000)),
    lines(`m ${"a=".repeat(30_000)}`),
    lines(`m,${"t=1,".repeat(15_000)}`),
    lines(`m ${"v=1,".repeat(15_000)}`),
    lines(`m,${"\\,".repeat(20_000)}`),
    lines(`m v=1 ${"0".repeat(60_000)}`),
    lines(`m v=${"1".repeat(60_000)}`),
    lines(`m v=${"1".repeat(59_000)}i`),
    // A string never closed runs to the end of the body: one 1 MiB line.
    `m v="${'\\"'.repeat(1 << 19)}`,
    "m v=1\n".repeat(1 << 17),
  ];
  for (const body of bodies) {
    const started = performance.now();
    const results = parseLineProtocol(body);
    const ms = performance.now() - started;
    assert.ok(results.length >= 1);
    // A quadratic parser needs minutes here; a linear one a few tens of milliseconds.
    assert.ok(ms < 3_000, `${JSON.stringify(body.slice(0, 20))}... took ${ms} ms`);
  }
});

// ---------------------------------------------------------------------------
// Properties. The encoder follows the reference: measurement escapes `,` ` `
// `\`; tag keys, tag values and field keys `,` `=` ` ` `\`; strings `"` `\`.

function escapeWith(text: string, special: string): string {
  let out = "";
  for (const ch of text) out += special.includes(ch) || ch === "\\" ? `\\${ch}` : ch;
  return out;
}

function encodeField(field: LineField, spelling: number): string {
  switch (field.type) {
    case "float":
      return String(field.value);
    case "integer":
      return `${BigInt(field.value)}i`;
    case "uinteger":
      return `${BigInt(field.value)}u`;
    case "string":
      return `"${escapeWith(field.value, '"')}"`;
    case "boolean":
      return (field.value
        ? ["t", "T", "true", "True", "TRUE"]
        : ["f", "F", "false", "False", "FALSE"])[
          spelling % 5
        ];
  }
}

/** A point, with its wire text; integers are kept as bigints to write them exactly. */
interface Case {
  point: LinePoint;
  text: string;
}

// Names use the characters that need escaping and a few that do not. `\n` and
// `\r` cannot be escaped outside a string, so names never hold them.
const nameUnit = fc.constantFrom(
  "a",
  "Z",
  "0",
  "_",
  ",",
  "=",
  " ",
  "\\",
  '"',
  "#",
  "\t",
  "é",
  "😀",
);
const nameArb = fc.string({ unit: nameUnit, minLength: 1, maxLength: 8 });
// A measurement may not start with `#` (a comment) or a tab (leading whitespace).
const measurementArb = nameArb.filter((name) => !name.startsWith("#") && !name.startsWith("\t"));
const stringUnit = fc.oneof(
  fc.constantFrom('"', "\\", "\n", "\r", ",", "=", " ", "\\n", '\\"'),
  fc.string({ unit: "grapheme", maxLength: 3 }),
);
const int64 = fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n);

const fieldArb: fc.Arbitrary<{ field: LineField; wire: string }> = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => {
    const value = Object.is(v, -0) ? 0 : v;
    return { field: { type: "float", value } as LineField, wire: String(value) };
  }),
  int64.map((v) => ({ field: { type: "integer", value: Number(v) } as LineField, wire: `${v}i` })),
  fc.bigInt(0n, 2n ** 64n - 1n).map((v) => ({
    field: { type: "uinteger", value: Number(v) } as LineField,
    wire: `${v}u`,
  })),
  fc.array(stringUnit, { maxLength: 6 }).map((parts) => {
    const value = parts.join("");
    return {
      field: { type: "string", value } as LineField,
      wire: encodeField({ type: "string", value }, 0),
    };
  }),
  fc.tuple(fc.boolean(), fc.nat(4)).map(([value, spelling]) => ({
    field: { type: "boolean", value } as LineField,
    wire: encodeField({ type: "boolean", value }, spelling),
  })),
);

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    measurement: measurementArb,
    tags: fc.uniqueArray(fc.tuple(nameArb, nameArb), { selector: ([k]) => k, maxLength: 4 }),
    fields: fc.uniqueArray(fc.tuple(nameArb, fieldArb), {
      selector: ([k]) => k,
      minLength: 1,
      maxLength: 4,
    }),
    timestamp: fc.option(int64),
    spaces: fc.integer({ min: 1, max: 3 }),
  })
  .map(({ measurement, tags, fields, timestamp, spaces }) => {
    const gap = " ".repeat(spaces);
    const tagText = tags.map(([k, v]) => `,${escapeWith(k, ",= ")}=${escapeWith(v, ",= ")}`).join(
      "",
    );
    const fieldText = fields.map(([k, f]) => `${escapeWith(k, ",= ")}=${f.wire}`).join(",");
    return {
      point: {
        measurement,
        tags: Object.fromEntries(tags),
        fields: Object.fromEntries(fields.map(([k, f]) => [k, f.field])),
        timestamp,
      },
      text: `${escapeWith(measurement, ", ")}${tagText}${gap}${fieldText}${
        timestamp === null ? "" : `${gap}${timestamp}`
      }`,
    };
  });

Deno.test("parseLineProtocol() property: encoded points parse back to themselves", () => {
  fc.assert(
    fc.property(caseArb, ({ point, text }) => {
      assert.deepEqual(one(text), point, text);
    }),
    { seed: 11, numRuns: 2_000 },
  );
});

Deno.test("parseLineProtocol() property: bodies of many points keep order and line numbers", () => {
  const filler = fc.constantFrom("", "# a comment", "   ", "\t# indented");
  fc.assert(
    fc.property(
      fc.array(fc.tuple(caseArb, fc.array(filler, { maxLength: 2 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.boolean(),
      fc.boolean(),
      (items, crlf, trailing) => {
        const eol = crlf ? "\r\n" : "\n";
        const lines: string[] = [];
        const expected: LineResult[] = [];
        let line = 1;
        for (const [{ point, text }, fillers] of items) {
          for (const f of fillers) {
            lines.push(f);
            line++;
          }
          lines.push(text);
          expected.push({ ok: true, line, point });
          // A string field may hold newlines: the next line number counts them.
          line += text.split("\n").length;
        }
        const body = lines.join(eol) + (trailing ? eol : "");
        assert.deepEqual(parseLineProtocol(body), expected);
      },
    ),
    { seed: 12, numRuns: 500 },
  );
});

/** Checks the shape every result must have, whatever the input. */
function checkResults(body: string): void {
  const results = parseLineProtocol(body);
  const lines = body.split("\n").length;
  let last = 0;
  for (const r of results) {
    assert.ok(Number.isInteger(r.line) && r.line > last && r.line <= lines, `line ${r.line}`);
    last = r.line;
    if (r.ok) {
      assert.ok(r.point.measurement.length > 0);
      assert.ok(Object.keys(r.point.fields).length > 0);
    } else {
      assert.ok(r.message.startsWith(`Cannot parse line ${r.line} as `), r.message);
    }
  }
}

Deno.test("parseLineProtocol() property: arbitrary text never throws", () => {
  const lpUnit = fc.constantFrom(
    "m",
    "v",
    "1",
    "i",
    "u",
    "t",
    "e",
    "-",
    ".",
    ",",
    "=",
    " ",
    "\\",
    '"',
    "#",
    "\n",
    "\r",
    "\t",
  );
  fc.assert(
    fc.property(fc.string({ unit: lpUnit, maxLength: 80 }), checkResults),
    { seed: 13, numRuns: 5_000 },
  );
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 200 }), checkResults),
    { seed: 14, numRuns: 2_000 },
  );
});

Deno.test("parseLineProtocol() property: a mutated good line never throws", () => {
  fc.assert(
    fc.property(
      caseArb,
      fc.nat(),
      fc.constantFrom("", ",", "=", " ", "\\", '"', "\n", "x"),
      ({ text }, at, insert) => {
        const i = at % (text.length + 1);
        checkResults(text.slice(0, i) + insert + text.slice(i + 1));
      },
    ),
    { seed: 15, numRuns: 3_000 },
  );
});
