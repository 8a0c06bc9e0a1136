// The service files in packaging/ that install.ts embeds with `with { type: "text" }`.
declare module "*.service" {
  const text: string;
  export default text;
}
declare module "*.conf" {
  const text: string;
  export default text;
}
