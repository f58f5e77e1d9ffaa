/// <reference lib="dom" />
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { dayTime } from "../client/format.ts";
import type { ConnectionRecord } from "../shared/connection_record.ts";

/** How often the list is read again while the page is open. */
const POLL_MS = 3000;

/**
 * The deployment's authenticated sockets (admins only): the server renders
 * the list; once hydrated it reads `/api/v1/connections` every few seconds,
 * and each socket can be disconnected and each user signed out everywhere,
 * after a confirm.
 */
export default function ConnectionsTable(props: { initial: ConnectionRecord[] }) {
  const items = useSignal(props.initial);
  const error = useSignal<string | null>(null);
  const notice = useSignal<string | null>(null);
  const busy = useSignal(false);

  async function refresh() {
    try {
      const res = await fetch("/api/v1/connections", { credentials: "same-origin" });
      if (res.status === 401) return globalThis.location.assign("/login");
      if (!res.ok) {
        error.value = `The list could not be read (${res.status}).`;
        return;
      }
      items.value = (await res.json()).items;
      error.value = null;
    } catch {
      error.value = "The server could not be reached.";
    }
  }

  useEffect(() => {
    const timer = setInterval(refresh, POLL_MS);
    return () => clearInterval(timer);
  }, []);

  async function act(what: string, method: string, path: string, done: string) {
    if (!confirm(what)) return;
    busy.value = true;
    try {
      const res = await fetch(path, { method, credentials: "same-origin" });
      if (res.status === 401) return globalThis.location.assign("/login");
      notice.value = res.status === 204
        ? done
        : res.status === 404
        ? "That connection is already gone."
        : `Refused (${res.status}).`;
      await refresh();
    } catch {
      error.value = "The server could not be reached.";
    } finally {
      busy.value = false;
    }
  }

  const users = new Map<string, { role: string; count: number }>();
  for (const c of items.value) {
    const u = users.get(c.user);
    if (u) u.count++;
    else users.set(c.user, { role: c.role, count: 1 });
  }

  return (
    <section class="connections">
      <p class="muted" aria-live="polite">
        {items.value.length === 1 ? "1 connection" : `${items.value.length} connections`}{" "}
        on every instance, read every {POLL_MS / 1000} s. Times are UTC.
        {notice.value && <strong class="notice">{notice.value}</strong>}
      </p>
      {error.value && <p class="error" role="alert">{error.value}</p>}
      {users.size > 0 && (
        <div class="table-wrap">
          <table class="attempts users">
            <caption class="visually-hidden">Users with open connections</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col" class="num">Sockets</th>
                <th scope="col">
                  <span class="visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {[...users].map(([name, u]) => (
                <tr key={name} data-user={name}>
                  <td>{name}</td>
                  <td>{u.role}</td>
                  <td class="num">{u.count}</td>
                  <td>
                    <button
                      type="button"
                      class="secondary danger"
                      disabled={busy.value}
                      onClick={() =>
                        act(
                          `Sign ${name} out everywhere? Every socket of theirs closes and every token issued to them until now stops working.`,
                          "POST",
                          `/api/v1/users/${encodeURIComponent(name)}/revoke`,
                          `${name} was signed out everywhere.`,
                        )}
                    >
                      Sign out everywhere
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="table-wrap">
        <table class="attempts connections-list">
          <caption class="visually-hidden">Open connections</caption>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col">IP</th>
              <th scope="col">Opened</th>
              <th scope="col">Expires</th>
              <th scope="col">Instance</th>
              <th scope="col">Origin / user agent</th>
              <th scope="col">
                <span class="visually-hidden">Action</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.value.length === 0 && (
              <tr>
                <td colSpan={8} class="muted">No authenticated connections.</td>
              </tr>
            )}
            {items.value.map((c) => (
              <tr key={c.id} data-connection-id={c.id}>
                <td>{c.user}</td>
                <td>{c.role}</td>
                <td>{c.ip}</td>
                <td>{dayTime(c.openedAt)}</td>
                <td>{dayTime(c.expiresAt)}</td>
                <td>
                  <code>{c.instance}</code>
                </td>
                <td class="agent" title={c.userAgent ?? undefined}>
                  {c.origin ?? <span class="muted">no origin</span>}
                  <br />
                  <small class="muted">{cut(c.userAgent ?? "", 80)}</small>
                </td>
                <td>
                  <button
                    type="button"
                    class="secondary danger"
                    disabled={busy.value}
                    onClick={() =>
                      act(
                        `Disconnect this socket of ${c.user}? It closes with 4403 revoked; the client may connect again with a valid token.`,
                        "DELETE",
                        `/api/v1/connections/${c.id}`,
                        "The connection was closed.",
                      )}
                  >
                    Disconnect
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** `text` cut to `max` characters, with an ellipsis when cut (the cell's title has it whole). */
function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
