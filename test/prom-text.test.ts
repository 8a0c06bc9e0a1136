import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { parsePrometheusText, sampleValue } from "./prom-text.ts";

describe("the Prometheus text-format parser", () => {
  test("reads HELP, TYPE, escaped label values, special floats and timestamps", () => {
    const text = [
      "# HELP http_requests_total The total number of HTTP requests.",
      "# TYPE http_requests_total counter",
      'http_requests_total{method="post",code="200"} 1027 1395066363000',
      'http_requests_total{method="post",code="400"}    3 1395066363000',
      "# A plain comment",
      'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
      "# TYPE rpc_duration_seconds histogram",
      'rpc_duration_seconds_bucket{le="0.5"} 4',
      'rpc_duration_seconds_bucket{le="+Inf"} 7',
      "rpc_duration_seconds_sum 3.5",
      "rpc_duration_seconds_count 7",
      "odd_value NaN",
      "neg_inf -Inf",
      "",
    ].join("\n");
    const f = parsePrometheusText(text);
    expect(f.get("http_requests_total")).toMatchObject({ type: "counter", help: "The total number of HTTP requests." });
    expect(f.get("http_requests_total")!.samples[1]).toEqual({ name: "http_requests_total", labels: { method: "post", code: "400" }, value: 3, timestampMs: 1395066363000 });
    expect(f.get("msdos_file_access_time_seconds")!.samples[0]!.labels).toEqual({ path: "C:\\DIR\\FILE.TXT", error: 'Cannot find file:\n"FILE.TXT"' });
    const h = f.get("rpc_duration_seconds")!;
    expect(h.type).toBe("histogram");
    expect(h.samples.map((s) => s.name)).toEqual(["rpc_duration_seconds_bucket", "rpc_duration_seconds_bucket", "rpc_duration_seconds_sum", "rpc_duration_seconds_count"]);
    expect(h.samples[1]!.labels.le).toBe("+Inf");
    expect(Number.isNaN(f.get("odd_value")!.samples[0]!.value)).toBe(true);
    expect(f.get("neg_inf")!.samples[0]!.value).toBe(Number.NEGATIVE_INFINITY);
    expect(sampleValue(f, "http_requests_total", { method: "post" })).toBe(1030);
    expect(sampleValue(f, "http_requests_total", { code: "500" })).toBe(0);
  });

  test("refuses what the format does not allow, naming the line", () => {
    expect(() => parsePrometheusText('m{a="x} 1')).toThrow(/line 1: unterminated value of label a/);
    expect(() => parsePrometheusText("m 1 2 3")).toThrow(/line 1: expected 'value \[timestamp\]'/);
    expect(() => parsePrometheusText("m one")).toThrow(/line 1: 'one' is not a number/);
    expect(() => parsePrometheusText('ok 1\nm{a="1",a="2"} 1')).toThrow(/line 2: label a given twice/);
    expect(() => parsePrometheusText("# TYPE m countr")).toThrow(/unknown type 'countr'/);
    expect(() => parsePrometheusText("m 1\n# TYPE m counter")).toThrow(/TYPE of m after its samples/);
    expect(() => parsePrometheusText('m{a="\\t"} 1')).toThrow(/unknown escape/);
    expect(() => parsePrometheusText("9m 1")).toThrow(/expected a metric name/);
  });

  test("reads what prom-client writes back to the values it was given", async () => {
    const registry = new Registry();
    const c = new Counter({ name: "t_total", help: 'help with \\ and\nnewline', labelNames: ["v"], registers: [registry] });
    c.inc({ v: 'a"b\\c\nd' }, 2.5);
    const h = new Histogram({ name: "t_seconds", help: "h", buckets: [0.1, 1], registers: [registry] });
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    const f = parsePrometheusText(await registry.metrics());
    expect(f.get("t_total")!.help).toBe("help with \\ and\nnewline");
    expect(f.get("t_total")!.samples[0]!.labels).toEqual({ v: 'a"b\\c\nd' });
    expect(sampleValue(f, "t_total")).toBe(2.5);
    expect(sampleValue(f, "t_seconds_bucket", { le: "0.1" })).toBe(1);
    expect(sampleValue(f, "t_seconds_bucket", { le: "1" })).toBe(2);
    expect(sampleValue(f, "t_seconds_bucket", { le: "+Inf" })).toBe(3);
    expect(sampleValue(f, "t_seconds_count")).toBe(3);
    expect(sampleValue(f, "t_seconds_sum")).toBeCloseTo(5.55);
  });
});
