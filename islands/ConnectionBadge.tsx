import { connection, disconnects } from "../client/store.ts";
import { clock } from "../client/format.ts";

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/**
 * The live socket's state, with the last close explained in words. The badge
 * keeps one line; its full text is the tooltip, and the line under it opens
 * the last few disconnects, whole and with their times, also once live again.
 */
export default function ConnectionBadge() {
  const { state, close, retryInMs } = connection.value;
  const past = disconnects.value;
  const retry = state === "reconnecting" && retryInMs !== undefined
    ? ` in ${Math.ceil(retryInMs / 1000)} s`
    : "";
  const why = close && state !== "live" ? describe(close) : null;
  return (
    <div class="connection">
      <div
        class={`badge badge-${state}`}
        role="status"
        aria-live="polite"
        data-state={state}
        title={why ? `${LABELS[state]}${retry}. ${why}` : undefined}
      >
        <span class="dot" aria-hidden="true" />
        <span class="label">{LABELS[state]}{retry}</span>
        {close && why && <span class="why" data-close-code={close.code}>{why}</span>}
      </div>
      {past.length > 0 && (
        <details class="disconnects" data-disconnects={past.length}>
          <summary>
            {past.length === 1 ? "1 disconnect" : `${past.length} disconnects`}, last at{" "}
            {clock(past[0].at)} UTC
          </summary>
          <ol>
            {past.map((c, i) => (
              <li key={`${c.at}-${i}`} data-close-code={c.code}>
                <time dateTime={new Date(c.at).toISOString()}>{clock(c.at)} UTC</time> {describe(c)}
              </li>
            ))}
          </ol>
        </details>
      )}
    </div>
  );
}

function describe(close: { code: number; reason: string; explanation: string }): string {
  return `${close.code}${close.reason ? ` ${close.reason}` : ""}: ${close.explanation}`;
}
