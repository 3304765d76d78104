import { describe, expect, it } from "vitest";
import { kafkaNotices } from "./process-run.ts";

describe("kafkaNotices (the CLI's view of a Kafka outage)", () => {
  it("prints one human line per condition, never the client's JSON, and one when Kafka answers again", () => {
    const lines: string[] = [];
    const notices = kafkaNotices((line) => lines.push(line));
    for (let i = 0; i < 5; i++) {
      notices.logger.error(
        { broker: "127.0.0.1:9092", stack: "Error: connect ECONNREFUSED ..." },
        "[Connection] Connection error: connect ECONNREFUSED 127.0.0.1:9092",
      );
      notices.logger.warn({}, "Restarting the consumer in 300ms");
    }
    notices.logger.error({}, "Failed to connect to seed broker, trying another broker from the list");
    notices.recovered();
    notices.recovered();
    expect(lines).toEqual([
      "Kafka: 127.0.0.1:9092: Connection error: connect ECONNREFUSED 127.0.0.1:9092; retrying (the run's state is safe)",
      "Kafka: Failed to connect to seed broker, trying another broker from the list; retrying (the run's state is safe)",
      "Kafka: reachable again",
    ]);
    expect(lines.some((l) => l.startsWith("{"))).toBe(false);
  });
});
