import { feed, mergeAttempts } from "../client/store.ts";
import { clock, millis } from "../client/format.ts";
import type { Attempt } from "../lib/protocol.ts";

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

/** A table of attempts; also used by the explorer. */
export function AttemptTable(props: { rows: Attempt[] }) {
  return (
    <div class="table-wrap">
      <table class="attempts">
        <thead>
          <tr>
            <th scope="col">Time (UTC)</th>
            <th scope="col">Outcome</th>
            <th scope="col">Reason</th>
            <th scope="col">User</th>
            <th scope="col">IP</th>
            <th scope="col">Via</th>
            <th scope="col" class="num">Took</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((a) => (
            <tr key={a.id} data-attempt-id={a.id} class={a.outcome}>
              <td>
                <time dateTime={new Date(a.at).toISOString()}>{clock(a.at)}</time>
              </td>
              <td>{a.outcome === "success" ? "✓ success" : "✗ failure"}</td>
              <td>
                <code>{a.reason}</code>
              </td>
              <td>{a.user ?? <span class="muted">—</span>}</td>
              <td>
                <code>{a.ip}</code>
              </td>
              <td>{a.transport}</td>
              <td class="num">{millis(a.durationMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
