/**
 * InfluxDB line protocol to points (CONTRACT 7.2, `POST /api/v2/write`):
 * each numeric field of a line is one point of the series
 * `measurement.field` whose labels are the line's tags. A float field is a
 * gauge value, an integer (`12i`) or unsigned (`12u`) field a counter
 * increment, a boolean a gauge of 1 or 0. A string field is not a number:
 * the line is reported bad for it (its numeric fields are still stored).
 */
import { type LinePoint, parseLineProtocol } from "./line_protocol.ts";

/** Timestamp precisions of `?precision=`, as nanoseconds per unit. */
export const PRECISIONS = { ns: 1n, us: 1_000n, ms: 1_000_000n, s: 1_000_000_000n } as const;
export type Precision = keyof typeof PRECISIONS;

/** A point from a line, with the line it came from. */
export interface LinePushPoint {
  line: number;
  point: {
    name: string;
    type: "counter" | "gauge";
    value: number;
    labels: Record<string, string>;
    at?: number;
  };
}

/** The points of a body, and each bad line's number and message. */
export function linesToPoints(
  body: string,
  precision: Precision,
): { points: LinePushPoint[]; errors: { line: number; message: string }[] } {
  const points: LinePushPoint[] = [];
  const errors: { line: number; message: string }[] = [];
  for (const result of parseLineProtocol(body)) {
    if (!result.ok) {
      errors.push({ line: result.line, message: result.message });
      continue;
    }
    const { line, point } = result;
    const at = timestampMs(point, precision);
    if (typeof at === "string") {
      errors.push({ line, message: at });
      continue;
    }
    for (const [field, f] of Object.entries(point.fields)) {
      const name = `${point.measurement}.${field}`;
      if (f.type === "string") {
        errors.push({
          line,
          message: `Cannot store field ${field} as it is a string, not a number`,
        });
        continue;
      }
      const value = f.type === "boolean" ? (f.value ? 1 : 0) : f.value;
      const type = f.type === "integer" || f.type === "uinteger" ? "counter" : "gauge";
      points.push({ line, point: { name, type, value, labels: { ...point.tags }, at } });
    }
  }
  return { points, errors };
}

/** The timestamp in epoch ms (undefined for none: the time of receipt), or an error message. */
function timestampMs(point: LinePoint, precision: Precision): number | undefined | string {
  if (point.timestamp === null) return undefined;
  const ms = Number((point.timestamp * PRECISIONS[precision]) / 1_000_000n);
  if (!Number.isSafeInteger(ms)) {
    return `Cannot store the line as its timestamp is out of range: current value is ${point.timestamp}`;
  }
  return ms;
}
