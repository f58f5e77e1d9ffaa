import { useSignal } from "@preact/signals";
import { dateTime, dayTime, millis } from "../client/format.ts";
import type { Attempt } from "../shared/protocol.ts";

/**
 * A table of attempts, for the overview's feed and the explorer. Each row
 * opens a detail line with everything recorded; a `bad_origin` row names
 * the refused origin in the table itself, since that is the answer to "why".
 */
export function AttemptTable(props: { rows: Attempt[] }) {
  const open = useSignal<string | null>(null);
  return (
    <>
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
              <th scope="col">
                <span class="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {props.rows.map((a) => {
              const shown = open.value === a.id;
              return [
                <tr key={a.id} data-attempt-id={a.id} class={a.outcome}>
                  <td>
                    <time dateTime={new Date(a.at).toISOString()}>{dayTime(a.at)}</time>
                  </td>
                  <td>{a.outcome === "success" ? "✓ success" : "✗ failure"}</td>
                  <td>
                    <code>{a.reason}</code>
                    {a.reason === "bad_origin" && (
                      <span class="refused-origin" data-refused-origin>
                        &#32;from <code>{a.origin ?? "no Origin header"}</code>
                      </span>
                    )}
                  </td>
                  <td>{a.user ?? <span class="muted">—</span>}</td>
                  <td>
                    <code>{a.ip}</code>
                  </td>
                  <td>{a.transport}</td>
                  <td class="num">{millis(a.durationMs)}</td>
                  <td>
                    <button
                      type="button"
                      class="link details-toggle"
                      aria-expanded={shown}
                      aria-controls={`attempt-${a.id}`}
                      onClick={() => open.value = shown ? null : a.id}
                    >
                      {shown ? "Hide" : "Details"}
                    </button>
                  </td>
                </tr>,
                shown && (
                  <tr key={`${a.id}-detail`} class="attempt-detail" id={`attempt-${a.id}`}>
                    <td colSpan={8}>
                      <AttemptDetail attempt={a} />
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
      </div>
      <p class="scroll-hint muted" aria-hidden="true">Scroll the table sideways for more →</p>
    </>
  );
}

/** Every field of one attempt, long text wrapped rather than cut. */
function AttemptDetail(props: { attempt: Attempt }) {
  const a = props.attempt;
  const none = <span class="muted">none recorded</span>;
  return (
    <dl class="detail" data-attempt-detail={a.id}>
      <dt>When</dt>
      <dd>
        <time dateTime={new Date(a.at).toISOString()}>{dateTime(a.at)}</time>
      </dd>
      <dt>Outcome</dt>
      <dd>
        {a.outcome}, <code>{a.reason}</code>
      </dd>
      <dt>Origin</dt>
      <dd data-field="origin">{a.origin ? <code>{a.origin}</code> : none}</dd>
      <dt>User agent</dt>
      <dd data-field="userAgent">{a.userAgent ? <code>{a.userAgent}</code> : none}</dd>
      <dt>Token id</dt>
      <dd data-field="tokenId">{a.tokenId ? <code>{a.tokenId}</code> : none}</dd>
      <dt>Transport</dt>
      <dd data-field="transport">{a.transport}</dd>
      <dt>Duration</dt>
      <dd data-field="duration">{millis(a.durationMs)}</dd>
      <dt>User, IP</dt>
      <dd>
        {a.user ?? "no user"}, <code>{a.ip}</code>
      </dd>
      <dt>Attempt id</dt>
      <dd>
        <code>{a.id}</code>
      </dd>
    </dl>
  );
}
