import { describe, expect, it } from "vitest";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Health } from "@scoreboard/gen/grpc/health/v1/health_pb";
import { ServerReflection, ServerReflectionRequestSchema, type ServerReflectionResponse } from "@scoreboard/gen/grpc/reflection/v1/reflection_pb";
import { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import { ScoreService } from "@scoreboard/gen/scoreboard/v1/score_pb";
import { reflectionService } from "./reflection.js";

const client = createClient(
  ServerReflection,
  createRouterTransport((router) => {
    const { service, impl } = reflectionService([RankingService, ScoreService, Health]);
    router.service(service, impl);
  }),
);

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"];

/** Sends the requests on one bidi stream and returns the answers in order. */
async function ask(...requests: Request[]): Promise<ServerReflectionResponse[]> {
  async function* send() {
    for (const messageRequest of requests) yield create(ServerReflectionRequestSchema, { host: "localhost", messageRequest });
  }
  const answers: ServerReflectionResponse[] = [];
  for await (const answer of client.serverReflectionInfo(send())) answers.push(answer);
  return answers;
}

async function askOne(request: Request): Promise<ServerReflectionResponse> {
  const [answer, ...rest] = await ask(request);
  expect(rest).toEqual([]);
  return answer!;
}

function filesOf(answer: ServerReflectionResponse): FileDescriptorProto[] {
  expect(answer.messageResponse.case).toBe("fileDescriptorResponse");
  if (answer.messageResponse.case !== "fileDescriptorResponse") return [];
  return answer.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/** Every import of every file is in the set, so a client can build the descriptors from this answer alone. */
function expectSelfContained(files: FileDescriptorProto[]) {
  const names = files.map((f) => f.name);
  expect(new Set(names).size).toBe(names.length);
  for (const file of files) for (const dep of file.dependency) expect(names, `${file.name} imports ${dep}`).toContain(dep);
}

function errorOf(answer: ServerReflectionResponse) {
  expect(answer.messageResponse.case).toBe("errorResponse");
  return answer.messageResponse.case === "errorResponse" ? answer.messageResponse.value : undefined;
}

describe("listServices", () => {
  it("lists the registered services and reflection itself", async () => {
    const answer = await askOne({ case: "listServices", value: "" });
    expect(answer.messageResponse.case).toBe("listServicesResponse");
    if (answer.messageResponse.case !== "listServicesResponse") return;
    expect(answer.messageResponse.value.service.map((s) => s.name).sort()).toEqual(
      ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "scoreboard.v1.RankingService", "scoreboard.v1.ScoreService"].sort(),
    );
  });

  it("echoes the host and the original request", async () => {
    const answer = await askOne({ case: "listServices", value: "*" });
    expect(answer.validHost).toBe("localhost");
    expect(answer.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
  });
});

describe("fileContainingSymbol", () => {
  it("returns ranking.proto first, then its dependencies", async () => {
    const files = filesOf(await askOne({ case: "fileContainingSymbol", value: "scoreboard.v1.RankingService" }));
    expect(files[0]?.name).toBe("scoreboard/v1/ranking.proto");
    expect(files[0]?.package).toBe("scoreboard.v1");
    expect(files[0]?.service.map((s) => s.name)).toEqual(["RankingService"]);
    expect(files[0]?.dependency.sort()).toEqual(["google/protobuf/timestamp.proto", "scoreboard/v1/leaderboard.proto"]);
    expect(files.map((f) => f.name).sort()).toEqual(["google/protobuf/timestamp.proto", "scoreboard/v1/leaderboard.proto", "scoreboard/v1/ranking.proto"]);
    expectSelfContained(files);
  });

  it("finds the file of a method by its full name", async () => {
    const files = filesOf(await askOne({ case: "fileContainingSymbol", value: "scoreboard.v1.RankingService.GetRank" }));
    expect(files[0]?.name).toBe("scoreboard/v1/ranking.proto");
    expect(files[0]?.service[0]?.method.map((m) => m.name)).toContain("GetRank");
  });

  it.each([
    ["a message", "scoreboard.v1.GetRankRequest", "scoreboard/v1/ranking.proto"],
    ["a field of a message", "scoreboard.v1.GetRankRequest.user_id", "scoreboard/v1/ranking.proto"],
    ["a message from a dependency", "scoreboard.v1.LeaderboardEntry", "scoreboard/v1/leaderboard.proto"],
    ["a well-known type", "google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["a nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["another service", "scoreboard.v1.ScoreService", "scoreboard/v1/score.proto"],
    ["reflection itself", "grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"],
  ])("finds %s", async (_what, symbol, file) => {
    const files = filesOf(await askOne({ case: "fileContainingSymbol", value: symbol }));
    expect(files[0]?.name).toBe(file);
    expectSelfContained(files);
  });

  it.each(["scoreboard.v1.Nope", "scoreboard.v1.RankingService.GetRank.Extra", "", "scoreboard"])(
    "answers NOT_FOUND (5) for unknown symbol %j",
    async (symbol) => {
      const error = errorOf(await askOne({ case: "fileContainingSymbol", value: symbol }));
      expect(error?.errorCode).toBe(5);
    },
  );
});

describe("fileByFilename", () => {
  it("returns a served file with its dependencies", async () => {
    const files = filesOf(await askOne({ case: "fileByFilename", value: "scoreboard/v1/ranking.proto" }));
    expect(files[0]?.name).toBe("scoreboard/v1/ranking.proto");
    expectSelfContained(files);
  });

  it("returns a dependency by name", async () => {
    const files = filesOf(await askOne({ case: "fileByFilename", value: "google/protobuf/timestamp.proto" }));
    expect(files.map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
  });

  it("answers NOT_FOUND (5) for a file not served", async () => {
    expect(errorOf(await askOne({ case: "fileByFilename", value: "scoreboard/v1/nope.proto" }))?.errorCode).toBe(5);
    // The name without .proto is not a file name.
    expect(errorOf(await askOne({ case: "fileByFilename", value: "scoreboard/v1/ranking" }))?.errorCode).toBe(5);
  });
});

describe("other requests", () => {
  it("answers allExtensionNumbersOfType with no extensions", async () => {
    const answer = await askOne({
      case: "allExtensionNumbersOfType",
      value: "scoreboard.v1.GetRankRequest",
    });
    expect(answer.messageResponse.case).toBe("allExtensionNumbersResponse");
    if (answer.messageResponse.case !== "allExtensionNumbersResponse") return;
    expect(answer.messageResponse.value.baseTypeName).toBe("scoreboard.v1.GetRankRequest");
    expect(answer.messageResponse.value.extensionNumber).toEqual([]);
  });

  it("answers UNIMPLEMENTED (12) for a request it does not support", async () => {
    expect(errorOf(await askOne({ case: undefined }))?.errorCode).toBe(12);
  });

  it("answers several requests on one stream in order", async () => {
    const answers = await ask(
      { case: "listServices", value: "" },
      { case: "fileContainingSymbol", value: "scoreboard.v1.Nope" },
      { case: "fileContainingSymbol", value: "scoreboard.v1.ScoreService" },
    );
    expect(answers.map((a) => a.messageResponse.case)).toEqual(["listServicesResponse", "errorResponse", "fileDescriptorResponse"]);
  });
});
