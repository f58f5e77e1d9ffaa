import { feed, mergeAttempts } from "../client/store.ts";
import { AttemptTable } from "../components/AttemptTable.tsx";
import type { Attempt } from "../shared/protocol.ts";

/** The newest attempts, live: rows arrive at the top as they happen. */
export default function AttemptFeed(props: { initial: Attempt[] }) {
  const rows = mergeAttempts(feed.value ?? [], props.initial);
  return (
    <section class="card feed" aria-label="Live attempts">
      <h2>Latest attempts</h2>
      {rows.length === 0 ? <p class="muted">No attempts yet.</p> : <AttemptTable rows={rows} />}
    </section>
  );
}
