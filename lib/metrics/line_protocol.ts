/**
 * InfluxDB line protocol (1.x and 2.x), parsed in one pass without regular
 * expressions, so the time is linear in the body and hostile input cannot make
 * it backtrack. It never throws: every line is a point or an error naming the
 * line, the element and the column.
 *
 * `measurement[,tag=value...] field=value[,field=value...] [timestamp]`
 *
 * - Lines end with `\n` (a `\r\n` end is accepted). Blank lines, and lines whose
 *   first character after leading spaces or tabs is `#`, are skipped.
 * - Escapes, as InfluxDB's line protocol reference documents them: in the
 *   measurement `\,` `\ ` and `\\`; in tag keys, tag values and field keys
 *   `\,` `\=` `\ ` and `\\`; in string field values `\"` and `\\`. A backslash
 *   before any other character is a literal backslash (`a\b` is `a\b`). A
 *   newline cannot be escaped outside a string. (InfluxDB 1.6 itself, tried
 *   with its `/write`, keeps `\\` outside strings as two backslashes and
 *   reads `x\\,y` as the one value `x\,y`; the documented rule is kept here
 *   because it can write every name, a trailing backslash included.)
 * - A string field value may hold raw newlines, as InfluxDB's own parser lets
 *   it: the point then spans several physical lines, its `line` is the first
 *   of them, and later lines keep their physical numbers.
 * - Field values: floats (`1`, `-1.5`, `.5`, `1e-3`; finite), integers (`12i`,
 *   signed 64-bit), unsigned integers (`12u`, 64-bit), strings (`"..."`),
 *   booleans (`t T true True TRUE f F false False FALSE`). An integer or
 *   unsigned value is checked against its 64-bit range and then given as a JS
 *   number, which is exact only up to 2^53: larger ones are rounded.
 * - The timestamp is a signed 64-bit integer, in the write's precision, or
 *   absent (`null`). Spaces separate the sections; runs of them are accepted,
 *   and so are trailing spaces. A tab is an ordinary character but at the
 *   start of a line, where it is skipped like a space (so a measurement
 *   cannot start with a tab, nor with `#`, which makes a comment).
 * - Refused, as InfluxDB 1.6 refuses them: an empty measurement, tag key,
 *   tag value or field key; an unescaped `=` in a tag value; a line without
 *   fields; a tag key given twice. Also refused: a field key given twice in
 *   one line (InfluxDB 1.6 keeps the last one without a word; here it is an
 *   error, since a counter increment would be lost), and a line over 64 KiB
 *   of UTF-8.
 *
 * @module
 */

/** One field value, typed as the line protocol spells it. */
export type LineField =
  | { type: "float" | "integer" | "uinteger"; value: number }
  | { type: "string"; value: string }
  | { type: "boolean"; value: boolean };

/** One parsed point. */
export interface LinePoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, LineField>;
  /** The timestamp as written (the unit is the write's precision), or null when absent. */
  timestamp: bigint | null;
}

/** One line's outcome; `line` is the 1-based physical line where the point starts. */
export type LineResult =
  | { ok: true; line: number; point: LinePoint }
  | { ok: false; line: number; message: string };

/** The longest line accepted, in UTF-8 bytes. */
export const MAX_LINE_BYTES = 65_536;

const NL = 10, CR = 13, TAB = 9, SPACE = 32, QUOTE = 34, HASH = 35, COMMA = 44, EQUALS = 61;
const BACKSLASH = 92, MINUS = 45, PLUS = 43, DOT = 46, ZERO = 48, NINE = 57;

/** Characters a backslash escapes, per element. */
const MEASUREMENT_ESCAPES = new Set([COMMA, SPACE, BACKSLASH]);
const KEY_ESCAPES = new Set([COMMA, EQUALS, SPACE, BACKSLASH]);
const STRING_ESCAPES = new Set([QUOTE, BACKSLASH]);

const BOOLEANS: Record<string, boolean> = {
  t: true,
  T: true,
  true: true,
  True: true,
  TRUE: true,
  f: false,
  F: false,
  false: false,
  False: false,
  FALSE: false,
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** Parses a line-protocol body into one result per point line. */
export function parseLineProtocol(body: string): LineResult[] {
  const results: LineResult[] = [];
  const n = body.length;
  let pos = 0;
  let lineNo = 1;
  while (pos < n) {
    const start = pos;
    const startLine = lineNo;
    let i = start;
    while (i < n && (body.charCodeAt(i) === SPACE || body.charCodeAt(i) === TAB)) i++;
    const first = i;
    let comment = false;
    if (i < n && body.charCodeAt(i) === HASH) {
      comment = true;
      while (i < n && body.charCodeAt(i) !== NL) i++;
    } else {
      const scanned = scanLineEnd(body, i);
      i = scanned.end;
      lineNo += scanned.newlines;
    }
    let contentEnd = i;
    if (contentEnd > first && body.charCodeAt(contentEnd - 1) === CR) contentEnd--;
    if (!comment && contentEnd > first) {
      results.push(parseOne(body, start, first, contentEnd, startLine));
    }
    pos = i + 1;
    lineNo++;
  }
  return results;
}

/**
 * Where the line that starts at `i` ends: the first `\n` outside a string
 * field value. Strings are recognised as the parser will (a `"` right after an
 * unescaped `=` in the field section), so the two agree on every valid line.
 */
function scanLineEnd(body: string, i: number): { end: number; newlines: number } {
  const n = body.length;
  let newlines = 0;
  // 0: measurement and tags, 1: fields, 2: timestamp.
  let section = 0;
  while (i < n) {
    const c = body.charCodeAt(i);
    if (c === NL) break;
    if (c === BACKSLASH && i + 1 < n && isEscapable(body.charCodeAt(i + 1))) {
      i += 2;
      continue;
    }
    if (c === SPACE && section < 2) {
      // Runs of spaces separate one section from the next.
      while (i + 1 < n && body.charCodeAt(i + 1) === SPACE) i++;
      section++;
    } else if (c === EQUALS && section === 1 && body.charCodeAt(i + 1) === QUOTE) {
      i += 2;
      while (i < n) {
        const s = body.charCodeAt(i);
        if (s === BACKSLASH && i + 1 < n && STRING_ESCAPES.has(body.charCodeAt(i + 1))) {
          i += 2;
          continue;
        }
        if (s === QUOTE) break;
        if (s === NL) newlines++;
        i++;
      }
    }
    i++;
  }
  return { end: Math.min(i, n), newlines };
}

function isEscapable(c: number): boolean {
  return KEY_ESCAPES.has(c) || c === QUOTE;
}

/** A line's refusal, thrown inside this module only and turned into an error result. */
class LineError extends Error {
  constructor(readonly what: string, readonly at: number) {
    super(what);
  }
}

function parseOne(
  body: string,
  start: number,
  first: number,
  end: number,
  line: number,
): LineResult {
  const bytes = utf8Length(body, start, end);
  if (bytes > MAX_LINE_BYTES) {
    return {
      ok: false,
      line,
      message:
        `Cannot parse line ${line} as it is longer than ${MAX_LINE_BYTES} bytes: current length is ${bytes}`,
    };
  }
  try {
    return { ok: true, line, point: new LineParser(body, first, end).point() };
  } catch (error) {
    if (error instanceof LineError) {
      return {
        ok: false,
        line,
        message: `Cannot parse line ${line} as ${error.what}: at column ${error.at - start + 1}`,
      };
    }
    // Not expected; reported as a bad line all the same, so the parser never throws.
    return { ok: false, line, message: `Cannot parse line ${line} as ${String(error)}` };
  }
}

/** UTF-8 length of `body[start, end)`, counted only when it could pass the limit. */
function utf8Length(body: string, start: number, end: number): number {
  const units = end - start;
  if (units > MAX_LINE_BYTES || units * 3 <= MAX_LINE_BYTES) return units;
  let bytes = 0;
  for (let i = start; i < end; i++) {
    const c = body.charCodeAt(i);
    // A surrogate pair is 4 bytes: 2 for each half.
    bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
  }
  return bytes;
}

/** Quotes a name for a message, cut so a hostile one cannot flood it. */
function quote(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name);
}

/** The parser of one line, `body[i, end)`, with no line end inside but in strings. */
class LineParser {
  constructor(private body: string, private i: number, private end: number) {}

  point(): LinePoint {
    const measurement = this.name(MEASUREMENT_ESCAPES, COMMA, SPACE, -1);
    if (measurement === "") throw new LineError("the measurement is empty", this.i);
    const tags = new Map<string, string>();
    while (this.at() === COMMA) {
      this.i++;
      const keyAt = this.i;
      const key = this.name(KEY_ESCAPES, EQUALS, COMMA, SPACE);
      if (key === "") throw new LineError("a tag key is empty", keyAt);
      if (this.at() !== EQUALS) throw new LineError(`tag ${quote(key)} has no "="`, this.i);
      this.i++;
      const value = this.name(KEY_ESCAPES, COMMA, SPACE, EQUALS);
      if (this.at() === EQUALS) {
        throw new LineError(`tag ${quote(key)} has an unescaped "=" in its value`, this.i);
      }
      if (value === "") throw new LineError(`tag ${quote(key)} has no value`, this.i);
      if (tags.has(key)) throw new LineError(`tag ${quote(key)} is given twice`, keyAt);
      tags.set(key, value);
    }
    this.spaces();
    if (this.i >= this.end) throw new LineError("it has no fields", this.i);
    const fields = new Map<string, LineField>();
    for (;;) {
      const keyAt = this.i;
      const key = this.name(KEY_ESCAPES, EQUALS, COMMA, SPACE);
      if (key === "") throw new LineError("a field key is empty", keyAt);
      if (this.at() !== EQUALS) throw new LineError(`field ${quote(key)} has no "="`, this.i);
      this.i++;
      const value = this.fieldValue(key);
      if (fields.has(key)) throw new LineError(`field ${quote(key)} is given twice`, keyAt);
      fields.set(key, value);
      const next = this.at();
      if (next === COMMA) {
        this.i++;
        continue;
      }
      if (next === SPACE || next === -1) break;
      throw new LineError(`field ${quote(key)} has text after its closing quote`, this.i);
    }
    this.spaces();
    const timestamp = this.timestamp();
    return {
      measurement,
      tags: Object.fromEntries(tags),
      fields: Object.fromEntries(fields),
      timestamp,
    };
  }

  /** The current character code, or -1 at the end of the line. */
  private at(): number {
    return this.i < this.end ? this.body.charCodeAt(this.i) : -1;
  }

  private spaces(): void {
    while (this.at() === SPACE) this.i++;
  }

  /** Reads an unquoted name up to one of the stop characters, unescaping `escapes`. */
  private name(escapes: Set<number>, stop1: number, stop2: number, stop3: number): string {
    const { body, end } = this;
    const from = this.i;
    let out = "";
    let run = from;
    let i = from;
    while (i < end) {
      const c = body.charCodeAt(i);
      if (c === stop1 || c === stop2 || c === stop3) break;
      if (c === BACKSLASH && i + 1 < end && escapes.has(body.charCodeAt(i + 1))) {
        out += body.slice(run, i);
        run = i + 1;
        i += 2;
        continue;
      }
      i++;
    }
    this.i = i;
    return out + body.slice(run, i);
  }

  private fieldValue(key: string): LineField {
    const { body, end } = this;
    const from = this.i;
    if (this.at() === QUOTE) return { type: "string", value: this.string(key) };
    let i = from;
    while (i < end) {
      const c = body.charCodeAt(i);
      if (c === COMMA || c === SPACE) break;
      i++;
    }
    this.i = i;
    if (i === from) throw new LineError(`field ${quote(key)} has no value`, from);
    const length = i - from;
    if (length <= 5) {
      const word = body.slice(from, i);
      if (Object.hasOwn(BOOLEANS, word)) return { type: "boolean", value: BOOLEANS[word] };
    }
    const last = body.charCodeAt(i - 1);
    const unsigned = last === 117; /* u */
    if (last === 105 /* i */ || unsigned) {
      const value = unsigned
        ? integer(body, from, i - 1, false, 0n, UINT64_MAX)
        : integer(body, from, i - 1, true, INT64_MIN, INT64_MAX);
      if (value === "range") {
        throw this.badValue(
          key,
          from,
          unsigned
            ? "must fit in an unsigned 64-bit integer"
            : "must fit in a signed 64-bit integer",
        );
      }
      if (value !== "syntax") return { type: unsigned ? "uinteger" : "integer", value };
    } else if (isFloat(body, from, i)) {
      const value = Number(body.slice(from, i));
      if (!Number.isFinite(value)) throw this.badValue(key, from, "must be a finite float");
      return { type: "float", value };
    }
    throw this.badValue(
      key,
      from,
      'must be a float, an integer (12i), an unsigned integer (12u), a string ("...") or a boolean',
    );
  }
  private badValue(key: string, at: number, what: string): LineError {
    return new LineError(`field ${quote(key)} ${what}`, at);
  }

  /** A double-quoted string starting at the opening quote; leaves `i` after the closing one. */
  private string(key: string): string {
    const { body, end } = this;
    const open = this.i;
    let out = "";
    let run = open + 1;
    let i = open + 1;
    while (i < end) {
      const c = body.charCodeAt(i);
      if (c === BACKSLASH && i + 1 < end && STRING_ESCAPES.has(body.charCodeAt(i + 1))) {
        out += body.slice(run, i);
        run = i + 1;
        i += 2;
        continue;
      }
      if (c === QUOTE) {
        this.i = i + 1;
        return out + body.slice(run, i);
      }
      i++;
    }
    throw new LineError(`field ${quote(key)} has a string without its closing quote`, open);
  }

  private timestamp(): bigint | null {
    const { body, end } = this;
    const from = this.i;
    if (from >= end) return null;
    let i = from;
    while (i < end && body.charCodeAt(i) !== SPACE) i++;
    this.i = i;
    const value = integer(body, from, i, true, INT64_MIN, INT64_MAX);
    if (value === "syntax") throw new LineError("the timestamp must be an integer", from);
    if (value === "range") {
      throw new LineError("the timestamp must fit in a signed 64-bit integer", from);
    }
    this.spaces();
    if (this.i < end) throw new LineError("it has text after the timestamp", this.i);
    return bigInteger(body, from, i);
  }
}

/**
 * The decimal integer `body[from, to)` (a leading `-` when `signed`) as a
 * number; "syntax" when it is not one, "range" when it lies outside
 * `[min, max]`. Leading zeros are skipped before the length check, so a huge
 * digit run is refused without converting it.
 */
function integer(
  body: string,
  from: number,
  to: number,
  signed: boolean,
  min: bigint,
  max: bigint,
): number | "syntax" | "range" {
  let i = from;
  if (signed && i < to && body.charCodeAt(i) === MINUS) i++;
  if (i === to) return "syntax";
  for (let j = i; j < to; j++) {
    if (!isDigit(body.charCodeAt(j))) return "syntax";
  }
  while (i < to - 1 && body.charCodeAt(i) === ZERO) i++;
  // 2^64 has 20 digits: a longer run is out of range without converting it.
  if (to - i > 20) return "range";
  // Below 20 digits only a signed run starting with 9 can pass 2^63 - 1 (a
  // nanosecond timestamp has 19 digits starting with 1): skip the bigint otherwise.
  if (to - i === 20 || (to - i === 19 && signed && body.charCodeAt(i) === NINE)) {
    const big = bigInteger(body, from, to);
    if (big < min || big > max) return "range";
  }
  return Number(body.slice(from, to));
}

/** `body[from, to)`, already checked to be `-?digits`, as a bigint; leading zeros skipped. */
function bigInteger(body: string, from: number, to: number): bigint {
  const negative = body.charCodeAt(from) === MINUS;
  let i = negative ? from + 1 : from;
  while (i < to - 1 && body.charCodeAt(i) === ZERO) i++;
  const magnitude = BigInt(body.slice(i, to));
  return negative ? -magnitude : magnitude;
}

/** `-?(digits[.digits*]|.digits)([eE][+-]?digits)?` over `body[from, to)`. */
function isFloat(body: string, from: number, to: number): boolean {
  let i = from;
  if (i < to && body.charCodeAt(i) === MINUS) i++;
  let digits = 0;
  while (i < to && isDigit(body.charCodeAt(i))) i++, digits++;
  if (i < to && body.charCodeAt(i) === DOT) {
    i++;
    while (i < to && isDigit(body.charCodeAt(i))) i++, digits++;
  }
  if (digits === 0) return false;
  if (i < to && (body.charCodeAt(i) === 101 /* e */ || body.charCodeAt(i) === 69 /* E */)) {
    i++;
    if (i < to && (body.charCodeAt(i) === PLUS || body.charCodeAt(i) === MINUS)) i++;
    let exponent = 0;
    while (i < to && isDigit(body.charCodeAt(i))) i++, exponent++;
    if (exponent === 0) return false;
  }
  return i === to;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}
