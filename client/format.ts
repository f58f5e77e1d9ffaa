/** Formatting shared by islands and server-rendered pages. */

const TIME = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  timeZone: "UTC",
});
const DATE_TIME = new Intl.DateTimeFormat("en-GB", {
  year: "numeric",
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  timeZone: "UTC",
});

const DAY = new Intl.DateTimeFormat("en-GB", {
  month: "short",
  day: "2-digit",
  timeZone: "UTC",
});

/** `22 Nov 14:03:07` (UTC): a table's time, whose header says UTC. */
export function dayTime(ms: number): string {
  return `${DAY.format(ms)} ${TIME.format(ms)}`;
}

const HOUR_MINUTE = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "UTC",
});

/** `14:03` (UTC): a chart's time axis. */
export function hourMinute(ms: number): string {
  return HOUR_MINUTE.format(ms);
}

/** `14:03:07` (UTC). */
export function clock(ms: number): string {
  return TIME.format(ms);
}

/** `22 Nov 2026, 14:03:07` (UTC). */
export function dateTime(ms: number): string {
  return DATE_TIME.format(ms) + " UTC";
}

/** A count with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** `1.2 ms`, `35 ms`. */
export function millis(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
