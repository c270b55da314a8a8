import { create, toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "@scoreboard/gen/grpc/reflection/v1/reflection_pb";
import { serve, type ServedService } from "./grpc-server.js";

// gRPC status codes used in reflection's ErrorResponse.
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/**
 * grpc.reflection.v1 over the descriptors of the services we serve, so
 * `buf curl`, grpcurl and Postman work without our .proto files.
 * connect-node ships no reflection; this is the small part clients use.
 */
export function reflectionService(services: DescService[]): ServedService {
  const index = new DescriptorIndex(services);
  return serve(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield index.answer(request);
      }
    },
  });
}

class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly fileBySymbol = new Map<string, DescFile>();
  private readonly serviceNames: string[];

  constructor(services: DescService[]) {
    this.serviceNames = [...services.map((s) => s.typeName), ServerReflection.typeName];
    for (const service of services) this.addFile(service.file);
    this.addFile(ServerReflection.file);
  }

  answer(request: ServerReflectionRequest): ServerReflectionResponse {
    const base = { validHost: request.host, originalRequest: request };
    const found = (files: DescFile[]) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: files.map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
        },
      });
    const error = (errorCode: number, errorMessage: string) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: "errorResponse", value: { errorCode, errorMessage } },
      });

    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: this.serviceNames.map((name) => ({ name })) },
          },
        });
      case "fileByFilename": {
        const file = this.files.get(req.value);
        return file ? found(withDependencies(file)) : error(NOT_FOUND, `file "${req.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.fileBySymbol.get(req.value) ?? this.fileBySymbol.get(parentSymbol(req.value));
        return file ? found(withDependencies(file)) : error(NOT_FOUND, `symbol "${req.value}" not found`);
      }
      case "allExtensionNumbersOfType":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: req.value, extensionNumber: [] } },
        });
      default:
        return error(UNIMPLEMENTED, "unsupported reflection request");
    }
  }

  private addFile(file: DescFile): void {
    if (this.files.has(`${file.name}.proto`)) return;
    this.files.set(`${file.name}.proto`, file);
    const addMessage = (message: DescMessage) => {
      this.fileBySymbol.set(message.typeName, file);
      message.nestedMessages.forEach(addMessage);
      for (const e of message.nestedEnums) this.fileBySymbol.set(e.typeName, file);
    };
    file.messages.forEach(addMessage);
    for (const e of file.enums) this.fileBySymbol.set(e.typeName, file);
    for (const s of file.services) this.fileBySymbol.set(s.typeName, file);
    for (const x of file.extensions) this.fileBySymbol.set(x.typeName, file);
    for (const dep of file.dependencies) this.addFile(dep);
  }
}

function parentSymbol(symbol: string): string {
  return symbol.slice(0, Math.max(0, symbol.lastIndexOf(".")));
}

// Clients resolve imports from the same response, so send the file first and
// then everything it depends on, each once.
function withDependencies(file: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return [...seen.values()];
}
