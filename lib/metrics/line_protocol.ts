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
import {
  BACKSLASH,
  CR,
  EQUALS,
  HASH,
  KEY_ESCAPES,
  NL,
  QUOTE,
  SPACE,
  STRING_ESCAPES,
  TAB,
} from "./line_protocol_chars.ts";
import { LineError, LineParser } from "./line_protocol_line.ts";

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
