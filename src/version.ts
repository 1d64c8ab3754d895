// The one version number of Berth's engine, runtime and CLIs.
export const VERSION = "0.1.0";
