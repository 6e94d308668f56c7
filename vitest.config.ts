import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    // The end-to-end tests drive real daemons in network namespaces and measure packets: one file at a time
    // keeps two cores calm enough for that.
    fileParallelism: false,
  },
});
