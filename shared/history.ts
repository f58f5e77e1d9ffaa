/**
 * One minute of the charts: attempts by outcome, and open connections. The
 * server reads them (lib/stats/history.ts) and the Charts island draws them.
 */
export interface MinutePoint {
  /** Start of the minute, epoch ms. */
  t: number;
  success: number;
  failure: number;
  /** Open connections last seen in that minute; null when none was sampled. */
  open: number | null;
}
