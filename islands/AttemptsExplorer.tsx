/// <reference lib="dom" />
import { useSignal } from "@preact/signals";
import type { TargetedSubmitEvent } from "preact";
import { AttemptTable } from "../components/AttemptTable.tsx";
import {
  apiQuery,
  type ExplorerFilters,
  explorerHref,
  exportHref,
  type WindowName,
  WINDOWS,
} from "../shared/explorer_params.ts";
import type { Attempt } from "../shared/protocol.ts";
import { type ExportFormat, type Transport, TRANSPORTS } from "../shared/attempt_filters.ts";

interface Page {
  items: Attempt[];
  cursor: string | null;
}

/**
 * Filters and pages through the attempt log. The server renders the first
 * page and plain links, so it works without JavaScript; once hydrated it
 * fetches `/api/v1/attempts` in place and keeps the URL in step.
 */
export default function AttemptsExplorer(
  props: { filters: ExplorerFilters; page: Page; reasons: string[] },
) {
  const filters = useSignal(props.filters);
  const page = useSignal(props.page);
  const error = useSignal<string | null>(null);
  const loading = useSignal(false);
  const f = filters.value;

  async function load(next: ExplorerFilters) {
    loading.value = true;
    error.value = null;
    try {
      const res = await fetch(`/api/v1/attempts?${apiQuery(next)}`, {
        credentials: "same-origin",
      });
      const body = await res.json();
      if (res.status === 401) return globalThis.location.assign("/login");
      if (!res.ok) {
        error.value = (body.issues ?? []).map((i: { path: string; message: string }) =>
          `${i.path}: ${i.message}`
        ).join("; ") || body.error;
        return;
      }
      filters.value = next;
      page.value = body;
      history.replaceState(null, "", explorerHref(next));
    } catch {
      error.value = "The server could not be reached.";
    } finally {
      loading.value = false;
    }
  }

  function submit(event: TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const text = (name: string) => String(data.get(name) ?? "").trim() || undefined;
    load({
      outcome: text("outcome") as ExplorerFilters["outcome"],
      reason: text("reason"),
      ip: text("ip"),
      user: text("user"),
      origin: text("origin"),
      transport: text("transport") as Transport | undefined,
      window: (text("window") ?? "24h") as WindowName,
    });
  }

  const olderHref = page.value.cursor ? explorerHref({ ...f, cursor: page.value.cursor }) : null;
  return (
    <section class="explorer">
      <form class="card filters" method="get" action="/admin/attempts" onSubmit={submit}>
        <label>
          Outcome
          <select name="outcome" value={f.outcome ?? ""}>
            <option value="">any</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
          </select>
        </label>
        <label>
          Reason
          <select name="reason" value={f.reason ?? ""}>
            <option value="">any</option>
            {props.reasons.map((r) => <option key={r} value={r}>{r}</option>)}
          </select>
        </label>
        <label>
          IP
          <input name="ip" value={f.ip ?? ""} maxLength={1024} placeholder="any" />
        </label>
        <label>
          User
          <input name="user" value={f.user ?? ""} maxLength={256} placeholder="any" />
        </label>
        <label>
          Origin
          <input
            name="origin"
            value={f.origin ?? ""}
            maxLength={1024}
            placeholder="any, e.g. https://app.example"
          />
        </label>
        <label>
          Transport
          <select name="transport" value={f.transport ?? ""}>
            <option value="">any</option>
            {TRANSPORTS.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </label>
        <label>
          Time
          <select name="window" value={f.window}>
            {Object.keys(WINDOWS).map((w) => (
              <option key={w} value={w}>{w === "all" ? "all time" : `last ${w}`}</option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={loading.value}>Filter</button>
      </form>
      {error.value && <p class="error" role="alert">{error.value}</p>}
      <p class="export">
        Export every match of these filters (up to 100,000, newest first):{" "}
        {(["csv", "json"] as ExportFormat[]).map((format) => (
          <a
            key={format}
            href={exportHref(f, format)}
            download
            data-export={format}
            // The window ends now: the link takes the time of the click, not of the render.
            onClick={(e) => e.currentTarget.href = exportHref(filters.value, format)}
          >
            {format.toUpperCase()}
          </a>
        ))}
      </p>
      <div class="card" aria-busy={loading.value}>
        {page.value.items.length === 0
          ? <p class="muted">No attempts match.</p>
          : <AttemptTable rows={page.value.items} />}
        <nav class="pager">
          {f.cursor && (
            <a
              href={explorerHref({ ...f, cursor: undefined })}
              onClick={(e) => {
                e.preventDefault();
                load({ ...f, cursor: undefined });
              }}
            >
              ← Newest
            </a>
          )}
          {olderHref && (
            <a
              href={olderHref}
              rel="next"
              onClick={(e) => {
                e.preventDefault();
                load({ ...f, cursor: page.value.cursor! });
              }}
            >
              Older →
            </a>
          )}
        </nav>
      </div>
    </section>
  );
}
