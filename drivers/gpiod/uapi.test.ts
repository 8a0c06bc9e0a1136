/**
 * The struct layouts and numbers of uapi.ts against <linux/gpio.h> itself: a C
 * program compiled here (and for arm64, run under qemu: ../testing/c-headers.ts)
 * reads what we encode and encodes what we decode.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { describeOnTargets } from "../testing/c-headers.ts";
import {
  CHIPINFO_SIZE, decodeChipInfo, decodeEvents, decodeLineInfo, decodeLineValue, encodeLineRequest, encodeLineValues,
  EVENT_FALLING_EDGE, EVENT_RISING_EDGE, GPIO_GET_CHIPINFO_IOCTL, GPIO_V2_GET_LINE_IOCTL, GPIO_V2_GET_LINEINFO_IOCTL,
  GPIO_V2_LINE_GET_VALUES_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL, LINE_EVENT_SIZE, LINE_REQUEST_SIZE, LINE_VALUES_SIZE,
  LINEINFO_SIZE, LineFlag, lineInfoRequest, requestFd,
} from "./uapi.ts";

const PROGRAM = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/gpio.h>

static void slurp(const char *path, void *buf, size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f || fread(buf, 1, size, f) != size) { perror(path); exit(1); }
  fclose(f);
}
static void spill(const char *path, const void *buf, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, size, f) != size) { perror(path); exit(1); }
  fclose(f);
}

int main(int argc, char **argv) {
  const char *what = argv[1], *path = argc > 2 ? argv[2] : NULL;
  if (!strcmp(what, "constants")) {
    printf("{\"sizes\":[%zu,%zu,%zu,%zu,%zu],", sizeof(struct gpiochip_info), sizeof(struct gpio_v2_line_info),
      sizeof(struct gpio_v2_line_request), sizeof(struct gpio_v2_line_values), sizeof(struct gpio_v2_line_event));
    printf("\"ioctls\":[%lu,%lu,%lu,%lu,%lu],", (unsigned long)GPIO_GET_CHIPINFO_IOCTL, (unsigned long)GPIO_V2_GET_LINEINFO_IOCTL,
      (unsigned long)GPIO_V2_GET_LINE_IOCTL, (unsigned long)GPIO_V2_LINE_GET_VALUES_IOCTL, (unsigned long)GPIO_V2_LINE_SET_VALUES_IOCTL);
    printf("\"flags\":[\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\",\"%llu\"],",
      (unsigned long long)GPIO_V2_LINE_FLAG_USED, (unsigned long long)GPIO_V2_LINE_FLAG_ACTIVE_LOW,
      (unsigned long long)GPIO_V2_LINE_FLAG_INPUT, (unsigned long long)GPIO_V2_LINE_FLAG_OUTPUT,
      (unsigned long long)GPIO_V2_LINE_FLAG_EDGE_RISING, (unsigned long long)GPIO_V2_LINE_FLAG_EDGE_FALLING,
      (unsigned long long)GPIO_V2_LINE_FLAG_OPEN_DRAIN, (unsigned long long)GPIO_V2_LINE_FLAG_OPEN_SOURCE,
      (unsigned long long)GPIO_V2_LINE_FLAG_BIAS_PULL_UP, (unsigned long long)GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN,
      (unsigned long long)GPIO_V2_LINE_FLAG_BIAS_DISABLED);
    printf("\"events\":[%d,%d]}\n", GPIO_V2_LINE_EVENT_RISING_EDGE, GPIO_V2_LINE_EVENT_FALLING_EDGE);
  } else if (!strcmp(what, "request")) {
    struct gpio_v2_line_request r;
    slurp(path, &r, sizeof r);
    const struct gpio_v2_line_config_attribute *a = &r.config.attrs[0];
    printf("{\"offset\":%u,\"consumer\":\"%s\",\"flags\":\"%llu\",\"num_attrs\":%u,\"attr_id\":%u,\"attr_values\":\"%llu\","
      "\"attr_mask\":\"%llu\",\"num_lines\":%u,\"event_buffer_size\":%u,\"fd\":%d}\n",
      r.offsets[0], r.consumer, (unsigned long long)r.config.flags, r.config.num_attrs, a->attr.id,
      (unsigned long long)a->attr.values, (unsigned long long)a->mask, r.num_lines, r.event_buffer_size, r.fd);
    r.fd = 42;
    spill(path, &r, sizeof r);
  } else if (!strcmp(what, "lineinfo")) {
    struct gpio_v2_line_info i;
    slurp(path, &i, sizeof i);
    printf("{\"offset\":%u}\n", i.offset);
    strcpy(i.name, "RELAY1");
    strcpy(i.consumer, "fan-control");
    i.flags = GPIO_V2_LINE_FLAG_USED | GPIO_V2_LINE_FLAG_OUTPUT | GPIO_V2_LINE_FLAG_ACTIVE_LOW;
    spill(path, &i, sizeof i);
  } else if (!strcmp(what, "chipinfo")) {
    struct gpiochip_info c = {0};
    strcpy(c.name, "gpiochip4");
    strcpy(c.label, "pinctrl-rp1");
    c.lines = 54;
    spill(path, &c, sizeof c);
  } else if (!strcmp(what, "values")) {
    struct gpio_v2_line_values v;
    slurp(path, &v, sizeof v);
    printf("{\"bits\":\"%llu\",\"mask\":\"%llu\"}\n", (unsigned long long)v.bits, (unsigned long long)v.mask);
    v.bits = 1;
    spill(path, &v, sizeof v);
  } else if (!strcmp(what, "events")) {
    struct gpio_v2_line_event e[2] = {{0}};
    e[0].timestamp_ns = 1234567890123ULL; e[0].id = GPIO_V2_LINE_EVENT_RISING_EDGE; e[0].offset = 17; e[0].seqno = 1;
    e[1].timestamp_ns = 1234567990123ULL; e[1].id = GPIO_V2_LINE_EVENT_FALLING_EDGE; e[1].offset = 17; e[1].seqno = 2;
    spill(path, e, sizeof e);
  }
  return 0;
}
`;

describeOnTargets("the struct layouts and numbers match <linux/gpio.h>", PROGRAM, (program) => {
  const c = (...args: string[]): string => program.run(...args);
  const file = (name: string, bytes?: Uint8Array): string => program.file(name, bytes);

  test("sizes, ioctl request numbers and flags", () => {
    expect(program.build()).toBe("");
    const k = JSON.parse(c("constants"));
    expect(k.sizes).toEqual([CHIPINFO_SIZE, LINEINFO_SIZE, LINE_REQUEST_SIZE, LINE_VALUES_SIZE, LINE_EVENT_SIZE]);
    expect(k.ioctls).toEqual([
      GPIO_GET_CHIPINFO_IOCTL, GPIO_V2_GET_LINEINFO_IOCTL, GPIO_V2_GET_LINE_IOCTL, GPIO_V2_LINE_GET_VALUES_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL,
    ]);
    expect(k.flags.map(BigInt)).toEqual([
      LineFlag.USED, LineFlag.ACTIVE_LOW, LineFlag.INPUT, LineFlag.OUTPUT, LineFlag.EDGE_RISING, LineFlag.EDGE_FALLING,
      LineFlag.OPEN_DRAIN, LineFlag.OPEN_SOURCE, LineFlag.BIAS_PULL_UP, LineFlag.BIAS_PULL_DOWN, LineFlag.BIAS_DISABLED,
    ]);
    expect(k.events).toEqual([EVENT_RISING_EDGE, EVENT_FALLING_EDGE]);
  });

  test("a line request as the kernel reads it, and the fd it writes back", () => {
    const flags = LineFlag.OUTPUT | LineFlag.ACTIVE_LOW | LineFlag.OPEN_DRAIN | LineFlag.BIAS_PULL_UP;
    const req = encodeLineRequest({ offset: 17, consumer: "jmp[4242] and a consumer name far too long", flags, outputValue: 1 });
    const path = file("request", req);
    expect(JSON.parse(c("request", path))).toEqual({
      offset: 17,
      consumer: "jmp[4242] and a consumer name f", // 31 bytes and the NUL
      flags: String(flags),
      num_attrs: 1,
      attr_id: 2, // GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
      attr_values: "1",
      attr_mask: "1",
      num_lines: 1,
      event_buffer_size: 0,
      fd: 0,
    });
    expect(requestFd(new Uint8Array(readFileSync(path)))).toBe(42);
    const input = encodeLineRequest({ offset: 3, consumer: "c", flags: LineFlag.INPUT | LineFlag.EDGE_RISING | LineFlag.EDGE_FALLING });
    expect(JSON.parse(c("request", file("input", input)))).toMatchObject({ offset: 3, num_attrs: 0, attr_id: 0, attr_mask: "0" });
  });

  test("line info: the offset we ask about, and name, consumer and flags read back", () => {
    const path = file("lineinfo", lineInfoRequest(5));
    expect(JSON.parse(c("lineinfo", path))).toEqual({ offset: 5 });
    expect(decodeLineInfo(new Uint8Array(readFileSync(path)))).toEqual({
      offset: 5,
      name: "RELAY1",
      consumer: "fan-control",
      flags: LineFlag.USED | LineFlag.OUTPUT | LineFlag.ACTIVE_LOW,
    });
  });

  test("chip info, values and edge events", () => {
    const chip = file("chipinfo");
    c("chipinfo", chip);
    expect(decodeChipInfo(new Uint8Array(readFileSync(chip)))).toEqual({ name: "gpiochip4", label: "pinctrl-rp1", lines: 54 });

    const values = file("values", encodeLineValues(1));
    expect(JSON.parse(c("values", values))).toEqual({ bits: "1", mask: "1" });
    expect(decodeLineValue(new Uint8Array(readFileSync(values)))).toBe(1);

    const events = file("events");
    c("events", events);
    const bytes = new Uint8Array(readFileSync(events));
    // Split where a read may split: the partial event is kept for the next chunk.
    const first = decodeEvents(bytes.subarray(0, 60));
    expect(first.events).toEqual([{ timestampNs: 1234567890123n, id: EVENT_RISING_EDGE, offset: 17 }]);
    expect(first.rest.byteLength).toBe(12);
    const joined = new Uint8Array([...first.rest, ...bytes.subarray(60)]);
    expect(decodeEvents(joined)).toEqual({
      events: [{ timestampNs: 1234567990123n, id: EVENT_FALLING_EDGE, offset: 17 }],
      rest: new Uint8Array(0),
    });
  });
});
