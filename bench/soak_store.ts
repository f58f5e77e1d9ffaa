/**
 * Counts the soak's attempt records in Lookout's KV file, once the server
 * has stopped, and matches them one by one with the load generator's
 * ledger: each attempt is found by the `jti` the soak minted or, for a
 * bad-signature token, by the address it alone used.
 */
import type { StoredAttempt } from "../lib/attempts/log.ts";
import { attemptCountKey, attemptsPrefix } from "../lib/store/keys.ts";
import { isBadsigAddress, type LedgerEntry } from "./soak_load.ts";

/** The store against the ledger. */
export interface StoreCount {
  /** Every record under `["attempts"]`. */
  records: number;
  /** Records of this run's attempts. */
  mine: number;
  /** Answered attempts with no record. */
  lost: number;
  /** A few of them, for a report. */
  lostSample: string[];
  /** Records beyond the first of one attempt. */
  duplicates: number;
  /** Records of attempts that were sent but got no answer (the server may record and then fail to answer). */
  storedUnanswered: number;
  /** Records whose outcome or reason is not what the client was told. */
  mismatched: number;
  /** Records of this run that the ledger does not hold. */
  unknown: number;
  /** Records of no attempt of this run, by reason. */
  others: Record<string, number>;
  /** The `["attempt_counts", "total"]` counter, which should equal `records`. */
  counterTotal: number | null;
  fileBytes: number;
}

/** What a record says, in the ledger's terms (`success`, `auth_failed <reason>`). */
function answerOf(record: StoredAttempt): string {
  return record.outcome === "success" ? "success" : `auth_failed ${record.reason}`;
}

/** Opens `kvPath` (the server must have stopped) and matches its records with the ledger. */
export async function countStore(
  kvPath: string,
  runId: string,
  ledgerPath: string,
): Promise<StoreCount> {
  const entries: LedgerEntry[] = JSON.parse(await Deno.readTextFile(ledgerPath));
  const ledger = new Map(entries.map(([id, , status]) => [id, status]));
  const stored = new Map<string, number>();
  const count: StoreCount = {
    records: 0,
    mine: 0,
    lost: 0,
    lostSample: [],
    duplicates: 0,
    storedUnanswered: 0,
    mismatched: 0,
    unknown: 0,
    others: {},
    counterTotal: null,
    fileBytes: (await Deno.stat(kvPath)).size,
  };
  const kv = await Deno.openKv(kvPath);
  try {
    for await (const entry of kv.list<StoredAttempt>({ prefix: attemptsPrefix() })) {
      const record = entry.value;
      count.records++;
      const id = record.tokenId?.startsWith(`${runId}-`)
        ? `jti:${record.tokenId}`
        : record.reason === "invalid_signature" && isBadsigAddress(record.ip)
        ? `ip:${record.ip}`
        : null;
      if (id === null) {
        count.others[record.reason] = (count.others[record.reason] ?? 0) + 1;
        continue;
      }
      count.mine++;
      const seen = stored.get(id) ?? 0;
      stored.set(id, seen + 1);
      if (seen > 0) {
        count.duplicates++;
        continue;
      }
      const status = ledger.get(id);
      if (status === undefined) count.unknown++;
      else if (status === "sent") count.storedUnanswered++;
      else if (status !== answerOf(record)) count.mismatched++;
    }
    const total = await kv.get<Deno.KvU64>(attemptCountKey("total"));
    count.counterTotal = total.value === null ? null : Number(total.value.value);
  } finally {
    kv.close();
  }
  for (const [id, status] of ledger) {
    if (status === "sent" || stored.has(id)) continue;
    count.lost++;
    if (count.lostSample.length < 10) count.lostSample.push(`${id} (${status})`);
  }
  return count;
}
