/** tsrun's version, reported by `-v`, `-info` and the Task API's Connect. */
export const version = '0.1.0';
/** The runtime name containerd knows tsrun by. */
export const runtimeName = 'io.containerd.tsrun.v1';
