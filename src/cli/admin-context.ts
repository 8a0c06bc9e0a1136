/** What every `jmp admin` command shares: how it finds the controller and its admin credential. */
export const ADMIN_ARGS = {
  adminConfig: { type: "string", description: "admin credential file (default: JMP_ADMIN_CONFIG, else <data-dir>/admin.yaml)", valueHint: "FILE" },
  dataDir: { type: "string", description: "the controller's data dir, when run on its machine", valueHint: "DIR" },
  namespace: { type: "string", description: "namespace", default: "default" },
} as const;

export async function adminClient(args: { adminConfig?: string; dataDir?: string }) {
  const [cc, { defaultDataDir }, { connectAdmin }] = await Promise.all([
    import("../common/client-config.ts"), import("../common/paths.ts"), import("../client/admin-client.ts"),
  ]);
  const config = cc.loadAdminConfig({ adminConfig: args.adminConfig }, process.env, args.dataDir ?? defaultDataDir());
  return connectAdmin(config);
}
