import { feed, FEED_SIZE } from "../client/store.ts";
import { AttemptTable } from "../components/AttemptTable.tsx";
import type { Attempt } from "../lib/protocol.ts";

/** The newest attempts, live: rows arrive at the top as they happen. */
export default function AttemptFeed(props: { initial: Attempt[] }) {
  const live = feed.value ?? [];
  const seen = new Set(live.map((a) => a.id));
  const rows = [...live, ...props.initial.filter((a) => !seen.has(a.id))].slice(0, FEED_SIZE);
  return (
    <section class="card feed" aria-label="Live attempts">
      <h2>Latest attempts</h2>
      {rows.length === 0 ? <p class="muted">No attempts yet.</p> : <AttemptTable rows={rows} />}
    </section>
  );
}
