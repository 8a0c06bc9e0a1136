import { expect, test } from "bun:test";
import { boolean, list, number, oneOf, optional, parseShape, record, SchemaError, string, withDefault } from "./schema.ts";

const shape = {
  url: string({ nonEmpty: true }),
  baudrate: withDefault(number({ integer: true, min: 1 }), 115200),
  flow: optional(oneOf(["none", "rtscts"])),
  echo: withDefault(boolean(), false),
  env: withDefault(record(string()), {}),
  ports: withDefault(list(number({ integer: true })), []),
};

const problem = (value: unknown) => {
  try {
    parseShape(shape, value, "export.serial.config");
  } catch (e) {
    if (e instanceof SchemaError) return e.message;
    throw e;
  }
  return "no error";
};

test("defaults fill in and values are typed", () => {
  expect(parseShape(shape, { url: "/dev/ttyUSB0", baudrate: "9600" })).toEqual({
    url: "/dev/ttyUSB0", baudrate: 9600, flow: undefined, echo: false, env: {}, ports: [],
  });
});

test("errors name the key path, what was expected and what came", () => {
  expect(problem({})).toBe("export.serial.config.url: missing; expected a non-empty string");
  expect(problem({ url: "x", baudrate: 1.5 })).toBe("export.serial.config.baudrate: expected an integer of at least 1, got number 1.5");
  expect(problem({ url: "x", flow: "xon" })).toBe('export.serial.config.flow: expected one of "none", "rtscts", got string "xon"');
  expect(problem({ url: "x", echo: "yes" })).toBe('export.serial.config.echo: expected true or false, got string "yes"');
  expect(problem({ url: "x", env: { A: 1 } })).toBe("export.serial.config.env.A: expected a string, got number 1");
  expect(problem({ url: "x", ports: [1, "b"] })).toBe('export.serial.config.ports[1]: expected an integer, got string "b"');
  expect(problem("x")).toBe('export.serial.config: expected a mapping, got string "x"');
});

test("unknown keys are errors with a did-you-mean hint", () => {
  expect(problem({ url: "x", baudrat: 9600 })).toBe(
    "export.serial.config.baudrat: unknown key (did you mean 'baudrate'? known keys: url, baudrate, flow, echo, env, ports)",
  );
});
