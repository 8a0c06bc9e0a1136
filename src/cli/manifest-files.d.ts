// The Kubernetes manifests in packaging/kubernetes/ that controller-manifests.ts embeds with `with { type: "text" }`.
declare module "*.yaml" {
  const text: string;
  export default text;
}
