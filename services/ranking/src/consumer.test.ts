import { describe, expect, it } from "vitest";
import { deadLetterReason } from "./consumer.js";

describe("deadLetterReason", () => {
  it("maps every dead-letter reason text to one of three bounded labels", () => {
    expect(deadLetterReason("max-deliveries: Connection is closed.")).toBe("max_deliveries");
    expect(deadLetterReason("undecodable: premature EOF")).toBe("undecodable");
    expect(deadLetterReason("bad-signature")).toBe("verification");
    expect(deadLetterReason("verification-error: key k9 unknown")).toBe("verification");
  });
});
