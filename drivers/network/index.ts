/** What the network folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { EchoNetwork, TcpNetwork, UdpNetwork, UnixNetwork } from "./driver.ts";

const upstream = (name: string) => [name, `jumpstarter_driver_network.driver.${name}`];

export default {
  drivers: [
    { name: "TcpNetwork", types: upstream("TcpNetwork"), driver: TcpNetwork },
    { name: "UdpNetwork", types: upstream("UdpNetwork"), driver: UdpNetwork },
    { name: "UnixNetwork", types: upstream("UnixNetwork"), driver: UnixNetwork },
    { name: "EchoNetwork", types: upstream("EchoNetwork"), driver: EchoNetwork },
  ],
  clients,
} satisfies DriverFolder;
