/**
 * What a pushed point must be (CONTRACT 7.2): name, labels, type, value and
 * time, each checked on its own so that a bad point is rejected with its
 * reason while the others are stored.
 */
import { MAX_ABS_VALUE } from "./encoding.ts";

export const METRIC_TYPES = ["counter", "gauge", "histogram"] as const;
export type MetricType = typeof METRIC_TYPES[number];

/** Why a point is rejected. */
export type RejectReason =
  | "invalid_name"
  | "invalid_labels"
  | "invalid_value"
  | "out_of_range_time"
  | "type_conflict"
  | "too_many_series";

/** A point that passed every check. */
export interface MetricPoint {
  name: string;
  type: MetricType;
  value: number;
  labels: Record<string, string>;
  at: number;
}

/** A point that did not. */
export interface Rejection {
  reason: RejectReason;
  message: string;
}

export const MAX_LABELS = 8;
const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
const LABEL_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_LABEL_VALUE = 128;
/** How far back and ahead a point's `at` may lie. */
export const MAX_AGE_MS = 24 * 3_600_000;
export const MAX_AHEAD_MS = 5 * 60_000;

/** Whether `name` is a valid series name. */
export function isMetricName(name: unknown): name is string {
  return typeof name === "string" && NAME.test(name);
}

function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 80 ? text.slice(0, 80) + "…" : text;
}

/** The labels' problem, or null when they are valid. */
export function labelsProblem(labels: unknown): string | null {
  if (typeof labels !== "object" || labels === null || Array.isArray(labels)) {
    return "Cannot store the point as labels must be an object of strings";
  }
  // for...in rather than Object.entries: this runs for every point, and
  // the labels of a point are few, so the walk is cheap but an array each is not.
  let count = 0;
  for (const key in labels) if (Object.hasOwn(labels, key)) count++;
  if (count > MAX_LABELS) {
    return `Cannot store the point as it has more than ${MAX_LABELS} labels: current count is ${count}`;
  }
  for (const key in labels) {
    if (!Object.hasOwn(labels, key)) continue;
    const value = (labels as Record<string, unknown>)[key];
    if (!LABEL_KEY.test(key)) {
      return `Cannot store the point as a label key must be 1 to 64 of A-Z a-z 0-9 _, starting with a letter or _: current key is ${
        show(key)
      }`;
    }
    if (typeof value !== "string") {
      return `Cannot store the point as label ${key} must be a string: current value is ${
        show(value)
      }`;
    }
    if (value.length < 1 || value.length > MAX_LABEL_VALUE) {
      return `Cannot store the point as label ${key} must be 1 to ${MAX_LABEL_VALUE} characters: current length is ${value.length}`;
    }
  }
  return null;
}

/** Checks one raw point of a push against `now`. */
export function checkPoint(raw: unknown, now: number): MetricPoint | Rejection {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { reason: "invalid_value", message: "Cannot store the point as it is not an object" };
  }
  const p = raw as Record<string, unknown>;
  if (!METRIC_TYPES.includes(p.type as MetricType)) {
    return {
      reason: "invalid_value",
      message:
        `Cannot store the point as type must be counter, gauge or histogram: current value is ${
          show(p.type)
        }`,
    };
  }
  const type = p.type as MetricType;
  if (typeof p.value !== "number" || !Number.isFinite(p.value)) {
    return {
      reason: "invalid_value",
      message: `Cannot store the point as value must be a finite number: current value is ${
        show(p.value)
      }`,
    };
  }
  if (Math.abs(p.value) > MAX_ABS_VALUE) {
    return {
      reason: "invalid_value",
      message: `Cannot store the point as value must lie within ±1e12: current value is ${p.value}`,
    };
  }
  if (type === "counter" && p.value < 0) {
    return {
      reason: "invalid_value",
      message:
        `Cannot store the point as a counter increment must be >= 0: current value is ${p.value}`,
    };
  }
  if (!isMetricName(p.name)) {
    return {
      reason: "invalid_name",
      message:
        `Cannot store the point as name must be 1 to 128 of A-Z a-z 0-9 _ . : -, starting with a letter or _: current value is ${
          show(p.name)
        }`,
    };
  }
  const labels = p.labels === undefined ? {} : p.labels;
  const problem = labelsProblem(labels);
  if (problem) return { reason: "invalid_labels", message: problem };
  const at = p.at ?? now;
  if (typeof at !== "number" || !Number.isInteger(at)) {
    return {
      reason: "out_of_range_time",
      message: `Cannot store the point as at must be whole epoch milliseconds: current value is ${
        show(at)
      }`,
    };
  }
  if (at < now - MAX_AGE_MS || at > now + MAX_AHEAD_MS) {
    return {
      reason: "out_of_range_time",
      message:
        `Cannot store the point as at must lie within the last 24 hours and at most 5 minutes ahead: current value is ${at}`,
    };
  }
  return { name: p.name, type, value: p.value, labels: labels as Record<string, string>, at };
}

/** Whether a checked point was rejected. */
export function isRejection(value: MetricPoint | Rejection): value is Rejection {
  return "reason" in value;
}

/** The id of a series: SHA-256 of its name and sorted labels, 32 hex digits. */
export async function seriesId(name: string, labels: Record<string, string>): Promise<string> {
  const canonical = JSON.stringify([
    name,
    Object.entries(labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
  ]);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return Array.from(new Uint8Array(digest).subarray(0, 16), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
