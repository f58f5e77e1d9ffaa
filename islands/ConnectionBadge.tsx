import { connection } from "../client/store.ts";

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** The live socket's state, with the last close explained in words. */
export default function ConnectionBadge() {
  const { state, close, retryInMs } = connection.value;
  const retry = state === "reconnecting" && retryInMs !== undefined
    ? ` in ${Math.ceil(retryInMs / 1000)} s`
    : "";
  return (
    <div class={`badge badge-${state}`} role="status" aria-live="polite" data-state={state}>
      <span class="dot" aria-hidden="true" />
      <span class="label">{LABELS[state]}{retry}</span>
      {close && state !== "live" && (
        <span class="why" data-close-code={close.code}>
          {close.code}
          {close.reason ? ` ${close.reason}` : ""}: {close.explanation}
        </span>
      )}
    </div>
  );
}
