/**
 * A client of the Kubernetes CRI API (runtime.v1) that containerd's CRI plugin serves on
 * containerd's own gRPC socket: what a kubelet calls, promise-based, with typed requests and
 * responses for the fields the tests use.
 *
 * The .proto is the one Debian's containerd 1.6.20 embeds (integration/cri/proto, see its
 * README), loaded at run time with @grpc/proto-loader. Decoding follows proto-loader's
 * options below: field names as in the .proto (snake_case), enums as their names, bytes as
 * Buffer, int64/uint64 as decimal strings (CRI timestamps are nanoseconds since the epoch:
 * above 2^53, a JS number would round them), absent messages as null, every other field
 * present with its default.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * integration/cri/proto in the repository. This module runs from build/integration/cri/ and
 * .proto sources are not copied into build/, so the path is resolved from there.
 */
export const CRI_PROTO_DIR = fileURLToPath(new URL('../../../integration/cri/proto/', import.meta.url));
/** The vendored CRI API file, relative to {@link CRI_PROTO_DIR}. */
export const CRI_PROTO_FILE = 'k8s.io/cri-api/pkg/apis/runtime/v1/api.proto';
export const RUNTIME_SERVICE = 'runtime.v1.RuntimeService';
export const IMAGE_SERVICE = 'runtime.v1.ImageService';

// ---------------------------------------------------------------------------------------
// Messages. Requests: optional fields may be left out (proto3 defaults). Responses: what
// proto-loader decodes with the options above.

/** int64/uint64 as decoded: a decimal string (e.g. nanoseconds since the epoch). */
export type Int64String = string;

export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

export interface VersionRequest {
  /** The kubelet's CRI API version, e.g. `v1`. */
  readonly version: string;
}

export interface VersionResponse {
  readonly version: string;
  readonly runtime_name: string;
  readonly runtime_version: string;
  readonly runtime_api_version: string;
}

export interface PodSandboxMetadata {
  readonly name: string;
  readonly uid: string;
  readonly namespace: string;
  readonly attempt: number;
}

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

export interface NamespaceOption {
  readonly network?: NamespaceMode;
  readonly pid?: NamespaceMode;
  readonly ipc?: NamespaceMode;
  readonly target_id?: string;
}

export interface LinuxSandboxSecurityContext {
  readonly namespace_options?: NamespaceOption;
  readonly privileged?: boolean;
}

export interface LinuxPodSandboxConfig {
  readonly cgroup_parent?: string;
  readonly security_context?: LinuxSandboxSecurityContext;
  readonly sysctls?: Readonly<Record<string, string>>;
}

export interface PodSandboxConfig {
  readonly metadata: PodSandboxMetadata;
  readonly hostname?: string;
  /** Directory (on the host) where container log files go; a container's `log_path` is relative to it. */
  readonly log_directory?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly linux?: LinuxPodSandboxConfig;
}

export interface RunPodSandboxRequest {
  readonly config: PodSandboxConfig;
  /** The CRI runtime handler: a key of the CRI plugin's `containerd.runtimes` table; '' for the default. */
  readonly runtime_handler: string;
}

export interface RunPodSandboxResponse {
  readonly pod_sandbox_id: string;
}

export interface PodSandboxIdRequest {
  readonly pod_sandbox_id: string;
}

export interface PodSandboxStatusRequest extends PodSandboxIdRequest {
  /** Ask for `info` (containerd: a JSON blob with the sandbox's pid, runtime spec, netns path, ...). */
  readonly verbose?: boolean;
}

export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface PodIP {
  readonly ip: string;
}

export interface PodSandboxNetworkStatus {
  readonly ip: string;
  readonly additional_ips: readonly PodIP[];
}

export interface PodSandboxStatus {
  readonly id: string;
  readonly metadata: PodSandboxMetadata | null;
  readonly state: PodSandboxState;
  readonly created_at: Int64String;
  readonly network: PodSandboxNetworkStatus | null;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly runtime_handler: string;
}

export interface PodSandboxStatusResponse {
  readonly status: PodSandboxStatus | null;
  /** Only with `verbose`: containerd puts one key, `info`, holding JSON. */
  readonly info: Readonly<Record<string, string>>;
}

export interface PodSandboxFilter {
  readonly id?: string;
  readonly state?: { readonly state: PodSandboxState };
  readonly label_selector?: Readonly<Record<string, string>>;
}

export interface PodSandbox {
  readonly id: string;
  readonly metadata: PodSandboxMetadata | null;
  readonly state: PodSandboxState;
  readonly created_at: Int64String;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly runtime_handler: string;
}

export interface ImageSpec {
  readonly image: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ContainerMetadata {
  readonly name: string;
  readonly attempt: number;
}

export interface ContainerConfig {
  readonly metadata: ContainerMetadata;
  readonly image: ImageSpec;
  /** Replaces the image's entrypoint. */
  readonly command?: readonly string[];
  /** Replaces the image's cmd. */
  readonly args?: readonly string[];
  readonly working_dir?: string;
  readonly envs?: readonly KeyValue[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Relative to the sandbox's `log_directory`. */
  readonly log_path?: string;
  readonly stdin?: boolean;
  readonly stdin_once?: boolean;
  readonly tty?: boolean;
}

export interface CreateContainerRequest {
  readonly pod_sandbox_id: string;
  readonly config: ContainerConfig;
  /** The same config the sandbox was run with. */
  readonly sandbox_config: PodSandboxConfig;
}

export interface CreateContainerResponse {
  readonly container_id: string;
}

export interface ContainerIdRequest {
  readonly container_id: string;
}

export interface StopContainerRequest extends ContainerIdRequest {
  /** Seconds between SIGTERM (the image's stop signal) and SIGKILL; 0 kills at once. */
  readonly timeout: number;
}

export interface ContainerStatusRequest extends ContainerIdRequest {
  readonly verbose?: boolean;
}

export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface ContainerStatus {
  readonly id: string;
  readonly metadata: ContainerMetadata | null;
  readonly state: ContainerState;
  readonly created_at: Int64String;
  readonly started_at: Int64String;
  readonly finished_at: Int64String;
  readonly exit_code: number;
  readonly image: ImageSpec | null;
  readonly image_ref: string;
  /** e.g. `Completed`, `Error`, `OOMKilled`. */
  readonly reason: string;
  readonly message: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** Absolute path of the container's log file. */
  readonly log_path: string;
}

export interface ContainerStatusResponse {
  readonly status: ContainerStatus | null;
  readonly info: Readonly<Record<string, string>>;
}

export interface ContainerFilter {
  readonly id?: string;
  readonly state?: { readonly state: ContainerState };
  readonly pod_sandbox_id?: string;
  readonly label_selector?: Readonly<Record<string, string>>;
}

export interface Container {
  readonly id: string;
  readonly pod_sandbox_id: string;
  readonly metadata: ContainerMetadata | null;
  readonly image: ImageSpec | null;
  readonly image_ref: string;
  readonly state: ContainerState;
  readonly created_at: Int64String;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface ExecSyncRequest {
  readonly container_id: string;
  readonly cmd: readonly string[];
  /** Seconds; 0 waits for ever. */
  readonly timeout: number;
}

export interface ExecSyncResponse {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exit_code: number;
}

export interface Image {
  /** The image config's digest (`sha256:...`). */
  readonly id: string;
  readonly repo_tags: readonly string[];
  readonly repo_digests: readonly string[];
  readonly size: Int64String;
  readonly uid: { readonly value: Int64String } | null;
  readonly username: string;
  readonly spec: ImageSpec | null;
  readonly pinned: boolean;
}

export interface ImageStatusResponse {
  /** null when the image is not present (CRI answers without an error). */
  readonly image: Image | null;
  readonly info: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------

/** A failed CRI call: the method and containerd's gRPC status. */
export class CriError extends Error {
  override readonly name = 'CriError';
  /** `RuntimeService/RunPodSandbox`, ... */
  readonly method: string;
  readonly code: grpc.status;
  readonly details: string;

  constructor(method: string, code: grpc.status, details: string) {
    super(`CRI ${method} failed with ${code in grpc.status ? grpc.status[code] : `code ${code}`}: ${details}`);
    this.method = method;
    this.code = code;
    this.details = details;
  }
}

/** Per-call settings. */
export interface CriCallOptions {
  /** Deadline of the call; the client's default (30 s) when left out. */
  readonly timeoutMs?: number;
}

/**
 * CRI RuntimeService: the calls a kubelet makes to run pods and containers. Each method
 * throws {@link CriError} with containerd's status code when the call fails.
 */
export interface RuntimeServiceClient {
  version(request?: VersionRequest, options?: CriCallOptions): Promise<VersionResponse>;
  runPodSandbox(request: RunPodSandboxRequest, options?: CriCallOptions): Promise<RunPodSandboxResponse>;
  stopPodSandbox(request: PodSandboxIdRequest, options?: CriCallOptions): Promise<void>;
  removePodSandbox(request: PodSandboxIdRequest, options?: CriCallOptions): Promise<void>;
  podSandboxStatus(request: PodSandboxStatusRequest, options?: CriCallOptions): Promise<PodSandboxStatusResponse>;
  listPodSandbox(filter?: PodSandboxFilter, options?: CriCallOptions): Promise<PodSandbox[]>;
  createContainer(request: CreateContainerRequest, options?: CriCallOptions): Promise<CreateContainerResponse>;
  startContainer(request: ContainerIdRequest, options?: CriCallOptions): Promise<void>;
  stopContainer(request: StopContainerRequest, options?: CriCallOptions): Promise<void>;
  removeContainer(request: ContainerIdRequest, options?: CriCallOptions): Promise<void>;
  containerStatus(request: ContainerStatusRequest, options?: CriCallOptions): Promise<ContainerStatusResponse>;
  listContainers(filter?: ContainerFilter, options?: CriCallOptions): Promise<Container[]>;
  /** Runs a command in a running container and collects its output; the deadline covers `timeout` plus 10 s. */
  execSync(request: ExecSyncRequest, options?: CriCallOptions): Promise<ExecSyncResponse>;
}

/**
 * CRI ImageService, without PullImage: tests run offline and import their images with
 * `ctr -n k8s.io images import` (see the harness's importTestImages).
 */
export interface ImageServiceClient {
  listImages(filter?: ImageSpec, options?: CriCallOptions): Promise<Image[]>;
  imageStatus(image: ImageSpec, options?: CriCallOptions): Promise<ImageStatusResponse>;
}

/** Both CRI services over one channel. */
export interface CriClient {
  readonly runtime: RuntimeServiceClient;
  readonly images: ImageServiceClient;
  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void;
}

/** Options of {@link createCriClient}. */
export interface CriClientOptions {
  /** Default deadline of each call; 30 s when left out. */
  readonly timeoutMs?: number;
}

type Methods = Readonly<Record<string, protoLoader.MethodDefinition<object, object>>>;

let packageDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The loaded CRI package definition (loaded once per process).
 * @throws Error when the vendored .proto is missing or does not parse.
 */
export function criDefinitions(): protoLoader.PackageDefinition {
  if (packageDefinition === undefined) {
    if (!existsSync(`${CRI_PROTO_DIR}${CRI_PROTO_FILE}`)) {
      throw new Error(`CRI .proto not found at ${CRI_PROTO_DIR}${CRI_PROTO_FILE}: run from the built repository (build/integration/cri/)`);
    }
    packageDefinition = protoLoader.loadSync(CRI_PROTO_FILE, {
      includeDirs: [CRI_PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: true,
    });
  }
  return packageDefinition;
}

function methodOf(service: string, method: string): protoLoader.MethodDefinition<object, object> {
  const definition = criDefinitions()[service];
  if (definition === undefined || 'format' in definition) throw new Error(`'${service}' is not a service of ${CRI_PROTO_FILE}`);
  const methods: Methods = definition;
  const found = methods[method];
  if (found === undefined) throw new Error(`${service} has no method '${method}' in ${CRI_PROTO_FILE}`);
  return found;
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === 'number';
}

/**
 * Connects to a CRI endpoint. The channel connects lazily, on the first call.
 *
 * @param address the socket path (containerd's gRPC socket; `unix://` optional).
 */
export function createCriClient(address: string, options: CriClientOptions = {}): CriClient {
  const target = address.startsWith('unix://') ? address : `unix://${address}`;
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;

  /**
   * One unary call. `Res` is this module's statement of what proto-loader decodes for the
   * method (see the interfaces above): it is not checked at run time.
   */
  const call = <Res>(service: string, method: string, request: object, callOptions?: CriCallOptions): Promise<Res> => {
    const definition = methodOf(service, method);
    const name = `${service.slice(service.lastIndexOf('.') + 1)}/${method}`;
    return new Promise<Res>((resolve, reject) => {
      client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + (callOptions?.timeoutMs ?? defaultTimeoutMs) },
        (error, response) => {
          if (error !== null) {
            reject(isServiceError(error) ? new CriError(name, error.code, error.details) : error);
          } else if (response === undefined) {
            reject(new CriError(name, grpc.status.INTERNAL, 'the call completed without a response message'));
          } else {
            resolve(response as Res);
          }
        },
      );
    });
  };
  const rt = <Res>(method: string, request: object, callOptions?: CriCallOptions): Promise<Res> => call<Res>(RUNTIME_SERVICE, method, request, callOptions);
  const img = <Res>(method: string, request: object, callOptions?: CriCallOptions): Promise<Res> => call<Res>(IMAGE_SERVICE, method, request, callOptions);

  const runtime: RuntimeServiceClient = {
    version: (request = { version: 'v1' }, o) => rt<VersionResponse>('Version', request, o),
    runPodSandbox: (request, o) => rt<RunPodSandboxResponse>('RunPodSandbox', request, o),
    async stopPodSandbox(request, o) {
      await rt('StopPodSandbox', request, o);
    },
    async removePodSandbox(request, o) {
      await rt('RemovePodSandbox', request, o);
    },
    podSandboxStatus: (request, o) => rt<PodSandboxStatusResponse>('PodSandboxStatus', request, o),
    async listPodSandbox(filter, o) {
      return (await rt<{ items: PodSandbox[] }>('ListPodSandbox', filter === undefined ? {} : { filter }, o)).items;
    },
    createContainer: (request, o) => rt<CreateContainerResponse>('CreateContainer', request, o),
    async startContainer(request, o) {
      await rt('StartContainer', request, o);
    },
    async stopContainer(request, o) {
      // containerd waits `timeout` seconds before SIGKILL: the deadline must outlast it.
      await rt('StopContainer', request, { timeoutMs: request.timeout * 1000 + defaultTimeoutMs, ...o });
    },
    async removeContainer(request, o) {
      await rt('RemoveContainer', request, o);
    },
    containerStatus: (request, o) => rt<ContainerStatusResponse>('ContainerStatus', request, o),
    async listContainers(filter, o) {
      return (await rt<{ containers: Container[] }>('ListContainers', filter === undefined ? {} : { filter }, o)).containers;
    },
    execSync: (request, o) => rt<ExecSyncResponse>('ExecSync', request, { timeoutMs: (request.timeout > 0 ? request.timeout * 1000 : defaultTimeoutMs) + 10_000, ...o }),
  };

  const images: ImageServiceClient = {
    async listImages(filter, o) {
      return (await img<{ images: Image[] }>('ListImages', filter === undefined ? {} : { filter: { image: filter } }, o)).images;
    },
    imageStatus: (image, o) => img<ImageStatusResponse>('ImageStatus', { image }, o),
  };

  return {
    runtime,
    images,
    close() {
      client.close();
    },
  };
}
