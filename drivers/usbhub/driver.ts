/**
 * UsbHubPort: the power of one downstream port of a USB hub, switched as uhubctl
 * does (hub-class SET_FEATURE / CLEAR_FEATURE PORT_POWER), for a board powered
 * from a hub port. Upstream has no such driver; it reports upstream's PowerClient
 * label, so `j power on|off|cycle|read` and upstream's Python client drive it.
 */
import { config, DriverError, InvalidArgumentError, UnavailableError, type ConfigOf } from "@jumpstarter/driver";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { requireLibusb, withDevice, type UsbHandle } from "../usb-common/libusb.ts";
import { formatLocation, parseHubLocation, parsePortLocation } from "../usb-common/location.ts";
import { describeDevice, deviceName, listUsbDevices, USB_CLASS_HUB, type UsbDevice } from "../usb-common/sysfs.ts";
import { decodeHubDescriptor, decodePortStatus, describePortStatus, setup, type HubDescriptor, type PortStatus } from "./hub.ts";

const shape = {
  location: config.optional(config.string({
    nonEmpty: true,
    description: "the port, by USB location as lsusb -t and uhubctl show it: 1-1.2 is port 2 of the hub at 1-1",
  })),
  hub: config.optional(config.either(config.number({ integer: true, min: 1 }), config.string({ nonEmpty: true }), {
    description: "the hub by its location (1-1; 1 is bus 1's root hub), with port",
  })),
  serial: config.optional(config.string({ nonEmpty: true, description: "the hub by its serial number, with port" })),
  port: config.optional(config.number({ integer: true, min: 1, description: "the port number on the hub given by hub or serial" })),
};

type Config = ConfigOf<typeof shape>;

/** A reading: upstream's voltage and current, plus what the hub says of the port. */
export interface PortReading extends PowerReading, Omit<PortStatus, "raw"> {
  hub: string;
  port: number;
}

type Target = { hub: string; port: number } | { serial: string; port: number };

function target(cfg: Config): Target {
  const given = (["location", "hub", "serial"] as const).filter((k) => cfg[k] !== undefined);
  if (given.length !== 1) {
    throw new InvalidArgumentError(
      given.length ? `give one of location, hub or serial, not ${given.join(" and ")}` : "give the port: location (1-1.2), or hub (1-1) or serial with port",
    );
  }
  if (cfg.location !== undefined) {
    if (cfg.port !== undefined) throw new InvalidArgumentError(`port: location ${cfg.location} names the port already; leave port out`);
    const l = parsePortLocation(cfg.location);
    if (!l) throw new InvalidArgumentError(`location: expected a port's USB location such as 1-1.2 (bus-port.port…), got "${cfg.location}"`);
    return { hub: formatLocation({ bus: l.bus, ports: l.ports.slice(0, -1) }), port: l.ports.at(-1)! };
  }
  if (cfg.port === undefined) throw new InvalidArgumentError(`port: which port of the hub ${cfg.hub !== undefined ? `at ${cfg.hub}` : `with serial ${cfg.serial}`}? (1, 2, …)`);
  if (cfg.hub !== undefined) {
    const l = parseHubLocation(String(cfg.hub));
    if (!l) throw new InvalidArgumentError(`hub: expected a hub's USB location such as 1-1 (or 1 for bus 1's root hub), got "${cfg.hub}"`);
    return { hub: formatLocation(l), port: cfg.port };
  }
  return { serial: cfg.serial!, port: cfg.port };
}

const SUPERSPEED_MBPS = 5000;

export class UsbHubPort extends PowerInterface<Config> {
  static override readonly configShape = shape;
  static override readonly summary = "one port of a USB hub, its power switched as uhubctl does (SET/CLEAR_FEATURE PORT_POWER)";
  static override readonly help = {
    on: "Power the hub port on",
    off: "Power the hub port off",
    read: "The port's status (powered, connected, ...)",
  };

  private readonly target: Target;
  /** `port 2 of hub 1-1`, for messages. */
  private name = "";
  private descriptor!: HubDescriptor;

  constructor(cfg: Config) {
    super(cfg);
    this.target = target(cfg);
    requireLibusb();
    const hub = this.locate();
    this.name = `port ${this.target.port} of hub ${hub.location}`;
    const status = this.withHub(hub, (h) => {
      this.descriptor = decodeHubDescriptor(h.control(setup.hubDescriptor(superSpeed(hub)), 12, "reading the hub descriptor"));
      this.checkPort(hub, this.descriptor.ports);
      return this.portStatus(h, hub);
    });
    if (this.descriptor.switching === "ganged") {
      this.log.warn(`hub ${describeDevice(hub)} switches the power of all its ports together (ganged): switching ${this.name} switches ports 1 to ${this.descriptor.ports}`);
    } else if (this.descriptor.switching === "none") {
      this.log.warn(`hub ${describeDevice(hub)} says it cannot switch port power; on and off will fail if it does not`);
    }
    this.log.info(`${this.name} (${deviceName(hub)}): ${describePortStatus(status)}`);
  }

  override async on(): Promise<void> {
    this.switchPower(true);
  }

  override async off(): Promise<void> {
    this.switchPower(false);
  }

  /**
   * One reading: a hub measures neither voltage nor current, so `voltage` is the
   * port's nominal VBUS (5 V when powered, 0 when not) and `current` is 0; the
   * other fields are the port's status as the hub reports it.
   */
  override async *read(): AsyncGenerator<PortReading> {
    const hub = this.locate();
    const { raw: _raw, ...status } = this.withHub(hub, (h) => this.portStatus(h, hub));
    yield { voltage: status.powered ? 5.0 : 0.0, current: 0.0, ...status, hub: hub.location, port: this.target.port };
  }

  private switchPower(on: boolean): void {
    const hub = this.locate();
    const status = this.withHub(hub, (h) => {
      const request = `${on ? "SET" : "CLEAR"}_FEATURE(PORT_POWER) for ${this.name}`;
      h.control(setup.power(this.target.port, on), new Uint8Array(0), request);
      return this.portStatus(h, hub);
    });
    if (status.powered !== on) {
      const why = this.descriptor.switching === "none" ? ": the hub cannot switch port power" : "";
      throw new DriverError(`hub ${hub.location} did not switch ${this.name} ${on ? "on" : "off"}: it reports the port ${status.powered ? "still powered" : "unpowered"}${why}`);
    }
    this.log.info(`${this.name} ${on ? "on" : "off"}: ${describePortStatus(status)}`);
  }

  private portStatus(h: UsbHandle, hub: UsbDevice): PortStatus {
    return decodePortStatus(h.control(setup.portStatus(this.target.port), 4, `GET_STATUS of ${this.name || `port ${this.target.port}`}`), superSpeed(hub));
  }

  private withHub<T>(hub: UsbDevice, use: (h: UsbHandle) => T): T {
    return withDevice(hub, `hub ${hub.location}`, use);
  }

  /** The hub, found again each time: it may have been replugged (a new device number) since. */
  private locate(): UsbDevice {
    const all = listUsbDevices();
    const hubs = all.filter((d) => d.deviceClass === USB_CLASS_HUB);
    const found = (hubs: UsbDevice[]) => hubs.map((d) => d.location).join(", ") || "none";
    if ("hub" in this.target) {
      const { hub: location } = this.target;
      const at = all.find((d) => d.location === location);
      if (!at) throw new UnavailableError(`no USB hub at ${location} (found hubs: ${found(hubs)})`);
      if (at.deviceClass !== USB_CLASS_HUB) throw new InvalidArgumentError(`${location} is not a hub: it is ${describeDevice(at)} (found hubs: ${found(hubs)})`);
      return at;
    }
    const { serial } = this.target;
    const match = hubs.filter((d) => d.serial === serial);
    if (match.length === 1) return match[0]!;
    if (match.length > 1) {
      throw new InvalidArgumentError(`several hubs have serial ${serial}: ${found(match)} (a USB 3 hub shows as two); name one by hub or location`);
    }
    const withSerials = hubs.map((d) => `${d.location}${d.serial ? ` (serial ${d.serial})` : ""}`).join(", ") || "none";
    throw new UnavailableError(`no USB hub with serial ${serial} (found hubs: ${withSerials})`);
  }

  private checkPort(hub: UsbDevice, ports: number): void {
    if (this.target.port > ports) {
      throw new InvalidArgumentError(`hub ${describeDevice(hub)} has ${ports} port${ports === 1 ? "" : "s"}: there is no port ${this.target.port}`);
    }
  }
}

function superSpeed(hub: UsbDevice): boolean {
  return (hub.speed ?? 0) >= SUPERSPEED_MBPS;
}
