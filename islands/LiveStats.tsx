import { presence, stats } from "../client/store.ts";
import { count } from "../client/format.ts";
import type { Stats } from "../shared/protocol.ts";

/** Connections, attempts, the top failure reasons and who is online, live. */
export default function LiveStats(props: { initial: Stats }) {
  const s = stats.value ?? props.initial;
  const online = presence.value ?? s.presence;
  const reasons = Object.entries(s.attempts.byReason).sort((a, b) => b[1] - a[1]).slice(0, 5);
  return (
    <section class="stats" aria-label="Live statistics">
      <div class="card stat">
        <h2>Connections</h2>
        <dl>
          <dt>Open</dt>
          <dd data-stat="open">{count(s.connections.open)}</dd>
          <dt>Authenticated</dt>
          <dd data-stat="authenticated">{count(s.connections.authenticated)}</dd>
          <dt>Pending</dt>
          <dd data-stat="pending">{count(s.connections.pending)}</dd>
        </dl>
      </div>
      <div class="card stat">
        <h2>Attempts</h2>
        <dl>
          <dt>Succeeded</dt>
          <dd data-stat="success" class="ok">{count(s.attempts.success)}</dd>
          <dt>Failed</dt>
          <dd data-stat="failure" class="bad">{count(s.attempts.failure)}</dd>
          <dt>Last minute</dt>
          <dd data-stat="last-minute">
            <span class="ok">{count(s.attempts.lastMinute.success)}</span>
            {" / "}
            <span class="bad">{count(s.attempts.lastMinute.failure)}</span>
          </dd>
        </dl>
      </div>
      <div class="card stat">
        <h2>Top failure reasons</h2>
        {reasons.length === 0
          ? <p class="muted">No failures yet.</p>
          : (
            <ol class="reasons" data-stat="reasons">
              {reasons.map(([reason, n]) => (
                <li key={reason}>
                  <code>{reason}</code>
                  <span>{count(n)}</span>
                </li>
              ))}
            </ol>
          )}
      </div>
      <div class="card stat">
        <h2>Online</h2>
        {online.length === 0
          ? <p class="muted">Nobody connected.</p>
          : (
            <ul class="online" data-stat="online">
              {online.map((p) => (
                <li key={p.name}>
                  <span>{p.name}</span>
                  <small>{p.role} · {p.connections}</small>
                </li>
              ))}
            </ul>
          )}
      </div>
    </section>
  );
}
