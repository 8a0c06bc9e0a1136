/**
 * The client library (`import … from "jmp/client"`): lease a board or use the
 * current shell's, drive it with typed clients, watch its console, forward ports.
 */
export { connect, lease, type Board, type BoardInfo, type ConnectOptions, type DriverShape, type LeaseOptions } from "./session.ts";
export { openConsole, type Console, type ConsoleOptions, type Match, type Pattern } from "./console.ts";
export { eventually, type EventuallyOptions } from "./eventually.ts";
export { forwardTcp, forwardUnix, type Forward } from "../../drivers/network/forward.ts";
export { PowerClient } from "../../drivers/power/client.ts";
export { SerialClient } from "../../drivers/serial/client.ts";
export { NetworkClient } from "../../drivers/network/client.ts";
export { ShellClient } from "../../drivers/shell/client.ts";
export { CompositeClient } from "../../drivers/composite/client.ts";
export {
  DriverClient, DriverError, InvalidArgumentError, NotImplementedDriverError, DeadlineExceededError,
  UnavailableError, ExporterNotReadyError, MethodNotFoundError, type ByteStream,
} from "../driver/index.ts";
