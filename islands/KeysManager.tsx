/// <reference lib="dom" />
import { useSignal } from "@preact/signals";
import type { TargetedSubmitEvent } from "preact";
import { dateTime } from "../client/format.ts";

interface KeyInfo {
  id: string;
  name: string;
  scope: string;
  createdAt: number;
  lastUsedAt: number | null;
}

/** The message of a failed answer: the API's issues or error code. */
async function failure(res: Response): Promise<string> {
  try {
    const body = await res.json();
    const issues = (body.issues ?? []).map((i: { path: string; message: string }) =>
      `${i.path}: ${i.message}`
    );
    return issues.join("; ") || body.message || body.error || `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

/**
 * Creates, lists and revokes API keys through `/api/v1/keys`. A new key is
 * held in this island's memory only, shown once with a copy button, and
 * dropped when dismissed or when the page goes: the server never sends it
 * again, and it is never in props, storage or a URL.
 */
export default function KeysManager(
  props: { initial: KeyInfo[]; scopes: string[]; maxName: number },
) {
  const keys = useSignal(props.initial);
  const created = useSignal<{ name: string; key: string } | null>(null);
  const copied = useSignal(false);
  const error = useSignal<string | null>(null);
  const busy = useSignal(false);

  async function create(event: TargetedSubmitEvent<HTMLFormElement>) {
    event.preventDefault();
    // Kept: `currentTarget` is null once the handler has awaited.
    const formEl = event.currentTarget;
    const form = new FormData(formEl);
    busy.value = true;
    error.value = null;
    try {
      const res = await fetch("/api/v1/keys", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: form.get("name"), scope: form.get("scope") }),
      });
      if (res.status === 401) return globalThis.location.assign("/login");
      if (res.status !== 201) {
        error.value = `Cannot create the key: ${await failure(res)}`;
        return;
      }
      const { key, ...info } = await res.json();
      created.value = { name: info.name, key };
      copied.value = false;
      keys.value = [...keys.value, { ...info, lastUsedAt: null }];
      formEl.reset();
    } catch {
      error.value = "Cannot create the key: the server could not be reached";
    } finally {
      busy.value = false;
    }
  }

  async function revoke(k: KeyInfo) {
    if (!confirm(`Revoke the key "${k.name}"? Services using it are refused within a second.`)) {
      return;
    }
    error.value = null;
    try {
      const res = await fetch(`/api/v1/keys/${encodeURIComponent(k.id)}`, {
        method: "DELETE",
        credentials: "same-origin",
      });
      if (res.status === 401) return globalThis.location.assign("/login");
      if (res.status !== 204 && res.status !== 404) {
        error.value = `Cannot revoke the key: ${await failure(res)}`;
        return;
      }
      keys.value = keys.value.filter((x) => x.id !== k.id);
    } catch {
      error.value = "Cannot revoke the key: the server could not be reached";
    }
  }

  async function copy() {
    if (!created.value) return;
    try {
      await navigator.clipboard.writeText(created.value.key);
      copied.value = true;
    } catch {
      // No clipboard permission (plain http on another host): select it for Ctrl+C.
      const el = document.querySelector<HTMLInputElement>("[data-new-key]");
      el?.select();
    }
  }

  return (
    <section class="keys" aria-label="API keys">
      <form class="card filters" onSubmit={create}>
        <label>
          Name{" "}
          <input name="name" required maxLength={props.maxName} placeholder="checkout-service" />
        </label>
        <label>
          Scope{" "}
          <select name="scope">
            {props.scopes.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <button type="submit" disabled={busy.value}>Create key</button>
      </form>
      {error.value && <p class="error" role="alert">{error.value}</p>}
      {created.value && (
        <div class="card new-key" role="status">
          <p>
            The key <strong>{created.value.name}</strong>{" "}
            is shown this once: copy it now, it cannot be shown again.
          </p>
          <div class="copy-line">
            <input
              data-new-key
              readOnly
              value={created.value.key}
              aria-label="New API key"
              onFocus={(e) => e.currentTarget.select()}
            />
            <button type="button" onClick={copy}>{copied.value ? "Copied" : "Copy"}</button>
            <button type="button" class="link" onClick={() => created.value = null}>
              Dismiss
            </button>
          </div>
        </div>
      )}
      {keys.value.length === 0
        ? <p class="muted">No keys yet. Create one above for each service that pushes or reads.</p>
        : (
          <div class="table-wrap">
            <table class="key-list">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Scope</th>
                  <th>Created (UTC)</th>
                  <th>Last used (UTC)</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                {keys.value.map((k) => (
                  <tr key={k.id} data-key-id={k.id}>
                    <td>{k.name}</td>
                    <td>{k.scope}</td>
                    <td>{dateTime(k.createdAt)}</td>
                    <td>{k.lastUsedAt === null ? "never" : dateTime(k.lastUsedAt)}</td>
                    <td>
                      <button type="button" class="danger" onClick={() => revoke(k)}>
                        Revoke
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </section>
  );
}
