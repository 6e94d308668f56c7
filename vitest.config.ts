import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    // The end-to-end tests drive real daemons in network namespaces: one file at a time keeps 2 cores calm.
    fileParallelism: true,
  },
});
