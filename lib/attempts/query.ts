import { z } from "zod";
import { isValid } from "ulid";
import { type Attempt, FAILURE_REASONS } from "../../shared/protocol.ts";
import { TRANSPORTS } from "../../shared/attempt_filters.ts";
import type { StoredAttempt } from "./log.ts";
import { smallestIdAt } from "../store/ids.ts";
import {
  type AttemptIndexField,
  attemptIndexPrefix,
  attemptKey,
  attemptsPrefix,
} from "../store/keys.ts";

/**
 * The last epoch ms a ULID's 48-bit time holds (in the year 10889): ids, and
 * so the log's keys, end there, and the query refuses anything later.
 */
export const MAX_TIME_MS = 2 ** 48 - 1;

const epochMs = z.string().regex(/^\d{1,15}$/, "must be epoch milliseconds")
  .transform(Number).refine(
    (n) => n <= MAX_TIME_MS,
    `must be epoch milliseconds from 0 to ${MAX_TIME_MS}`,
  );

/** The query parameters of `GET /api/v1/attempts`. Unknown ones are refused. */
export const AttemptQuery = z.strictObject({
  outcome: z.enum(["success", "failure"]).optional(),
  reason: z.enum(["ok", ...FAILURE_REASONS]).optional(),
  ip: z.string().min(1).max(1024).optional(),
  user: z.string().min(1).max(256).optional(),
  origin: z.string().min(1).max(1024).optional(),
  transport: z.enum(TRANSPORTS).optional(),
  since: epochMs.optional(),
  until: epochMs.optional(),
  limit: z.string().regex(/^\d{1,3}$/, "must be an integer from 1 to 500")
    .transform(Number).refine(
      (n) => n >= 1 && n <= 500,
      "must be an integer from 1 to 500",
    ).default(50),
  cursor: z.string().refine(isValid, "must be a cursor from a previous page")
    .optional(),
}).refine(
  (q) => q.since === undefined || q.until === undefined || q.since <= q.until,
  { message: "must not be after until", path: ["since"] },
);
export type AttemptQuery = z.infer<typeof AttemptQuery>;

/** One page of attempts, newest first; `cursor` continues it, or is null. */
export interface AttemptPage {
  items: Attempt[];
  cursor: string | null;
}

/** getMany takes at most 10 keys. */
const GET_MANY = 10;

/**
 * Lists attempts newest first. One secondary index (or the records
 * themselves) is walked backwards in id order between `since` and `until`;
 * the other filters are applied to the records. A page stops after scanning
 * a bounded number of entries, so a sparse filter answers promptly with a
 * short page and a cursor rather than walking the whole log.
 */
export async function listAttempts(
  kv: Deno.Kv,
  query: AttemptQuery,
  now = Date.now(),
): Promise<AttemptPage> {
  const field: AttemptIndexField | null = query.user !== undefined
    ? "user"
    : query.ip !== undefined
    ? "ip"
    : query.reason !== undefined
    ? "reason"
    : query.outcome !== undefined
    ? "outcome"
    : null;
  const prefix = field ? attemptIndexPrefix(field, query[field]!) : attemptsPrefix();
  const lower = query.since !== undefined ? smallestIdAt(query.since) : "";
  // `until` is inclusive: the bound is the next millisecond, or none past the last one.
  let upper = query.until !== undefined && query.until < MAX_TIME_MS
    ? smallestIdAt(query.until + 1)
    : null;
  if (query.cursor && (upper === null || query.cursor < upper)) {
    upper = query.cursor;
  }
  const selector: Deno.KvListSelector = {
    start: [...prefix, lower],
    end: upper === null ? [...prefix, "\u{10FFFF}"] : [...prefix, upper],
  };

  const items: Attempt[] = [];
  const scanBudget = Math.max(2_000, query.limit * 20);
  let scanned = 0;
  let lastScanned: string | null = null;
  let ids: string[] = [];
  const iter = kv.list<unknown>(selector, {
    reverse: true,
    batchSize: Math.min(500, query.limit + 1),
  });

  const take = async (): Promise<boolean> => {
    const records = field === null
      ? ids.map((id) => pending.get(id)!)
      : (await kv.getMany<StoredAttempt[]>(ids.map(attemptKey)))
        .map((e) => e.value);
    for (const record of records) {
      if (record && matches(record, query, now)) {
        items.push(strip(record));
        if (items.length > query.limit) return true;
      }
    }
    ids = [];
    pending.clear();
    return false;
  };
  const pending = new Map<string, StoredAttempt>();

  for await (const entry of iter) {
    const id = String(entry.key[entry.key.length - 1]);
    ids.push(id);
    if (field === null) pending.set(id, entry.value as StoredAttempt);
    lastScanned = id;
    scanned++;
    if (ids.length === GET_MANY && await take()) break;
    if (scanned >= scanBudget) break;
  }
  if (ids.length > 0 && items.length <= query.limit) await take();

  if (items.length > query.limit) {
    items.length = query.limit;
    return { items, cursor: items[items.length - 1].id };
  }
  // Scan budget spent: hand back where the scan stopped.
  if (scanned >= scanBudget && lastScanned) {
    return { items, cursor: lastScanned };
  }
  return { items, cursor: null };
}

function matches(a: StoredAttempt, q: AttemptQuery, now: number): boolean {
  return a.expiresAt > now &&
    (q.outcome === undefined || a.outcome === q.outcome) &&
    (q.reason === undefined || a.reason === q.reason) &&
    (q.ip === undefined || a.ip === q.ip) &&
    (q.user === undefined || a.user === q.user) &&
    (q.origin === undefined || a.origin === q.origin) &&
    (q.transport === undefined || a.transport === q.transport) &&
    (q.since === undefined || a.at >= q.since) &&
    (q.until === undefined || a.at <= q.until);
}

function strip(record: StoredAttempt): Attempt {
  const { expiresAt: _, ...attempt } = record;
  return attempt;
}
