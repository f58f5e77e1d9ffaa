import type { ComponentType } from "preact";

/**
 * Renders an island on the server inside a marker that names it and carries
 * its props as JSON; `client/main.ts` finds the marker and hydrates it with
 * the same props. Props must survive JSON: no functions, no secrets.
 */
export function Island<P extends Record<string, unknown>>(
  props: { name: string; component: ComponentType<P>; props: P },
) {
  const Component = props.component;
  return (
    <div class="island" data-island={props.name} data-props={JSON.stringify(props.props)}>
      <Component {...props.props} />
    </div>
  );
}
