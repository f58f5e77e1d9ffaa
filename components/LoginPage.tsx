import type { Assets } from "../shared/assets.ts";
import { Layout } from "./Layout.tsx";

/** The sign-in form. It posts to `/login` (so a refusal re-renders at `/login`) and works without JavaScript. */
export function LoginPage(props: { assets: Assets; error?: string; username?: string }) {
  return (
    <Layout title="Sign in" assets={props.assets}>
      <main class="login">
        <h1>Lookout</h1>
        <form method="post" action="/login" class="card">
          <h2>Sign in</h2>
          {props.error && <p class="error" role="alert">{props.error}</p>}
          <label>
            User name
            <input
              name="username"
              autocomplete="username"
              required
              maxLength={64}
              value={props.username ?? ""}
              autofocus={!props.username}
            />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              autocomplete="current-password"
              required
              maxLength={1024}
              autofocus={Boolean(props.username)}
            />
          </label>
          <button type="submit">Sign in</button>
        </form>
      </main>
    </Layout>
  );
}
