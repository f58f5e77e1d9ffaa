/**
 * The parser of one line-protocol line, once the scanner has found where it
 * ends: the measurement, tags and field keys with their escapes, the field
 * values and the timestamp. A refusal is a {@linkcode LineError} naming the
 * element and where it starts.
 *
 * @module
 */
import type { LineField, LinePoint } from "./line_protocol.ts";
import {
  BACKSLASH,
  COMMA,
  EQUALS,
  KEY_ESCAPES,
  MEASUREMENT_ESCAPES,
  QUOTE,
  SPACE,
  STRING_ESCAPES,
} from "./line_protocol_chars.ts";
import {
  bigInteger,
  BOOLEANS,
  INT64_MAX,
  INT64_MIN,
  integer,
  isFloat,
  UINT64_MAX,
} from "./line_protocol_numbers.ts";

/** A line's refusal, thrown by {@linkcode LineParser} and turned into an error result by the parse loop. */
export class LineError extends Error {
  constructor(readonly what: string, readonly at: number) {
    super(what);
  }
}

/** Quotes a name for a message, cut so a hostile one cannot flood it. */
function quote(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name);
}

/** The parser of one line, `body[i, end)`, with no line end inside but in strings. */
export class LineParser {
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
