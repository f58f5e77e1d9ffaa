import { Layout } from "./Layout.tsx";

/** The signed-in shell of the dashboard: who is signed in, and sign-out. */
export function AdminPage(props: { user: { name: string; role: string } }) {
  return (
    <Layout title="Dashboard">
      <header class="bar">
        <strong>Lookout</strong>
        <span class="who">
          {props.user.name} <small>({props.user.role})</small>
        </span>
        <form method="post" action="/auth/logout">
          <button type="submit" class="link">Sign out</button>
        </form>
      </header>
      <main>
        <h1>Dashboard</h1>
        <p>
          Signed in. The live socket is <code>/admin/ws</code>; the attempt log is at{" "}
          <code>/api/v1/attempts</code>.
        </p>
      </main>
    </Layout>
  );
}
