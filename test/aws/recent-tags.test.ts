import { beforeEach, describe, expect, it } from "vitest";
import {
  forgetRecentTags,
  RECENT_TAG_TTL_MS,
  rememberTags,
  withRecentTags,
} from "../../functions/aws/recent-tags.ts";

const ID = "i-0f0000000000a0001";

describe("recent tag writes", () => {
  beforeEach(forgetRecentTags);

  it("lay a tag just written over a describe that does not show it yet", () => {
    rememberTags(ID, [{ key: "labgate:credential", value: "/labgate/foo/vpn/client-1" }], 1_000);
    expect(withRecentTags(ID, new Map(), 2_000).get("labgate:credential")).toBe("/labgate/foo/vpn/client-1");
  });

  it("hide a tag just deleted that a describe still shows", () => {
    rememberTags(ID, [{ key: "labgate:credential", value: undefined }], 1_000);
    const described = new Map([["labgate:credential", "/labgate/foo/vpn/client-1"]]);
    expect(withRecentTags(ID, described, 2_000).has("labgate:credential")).toBe(false);
  });

  it("give way to what EC2 describes once EC2 has surely caught up", () => {
    rememberTags(ID, [{ key: "labgate:credential", value: "/labgate/foo/vpn/client-1" }], 1_000);
    const described = new Map([["labgate:credential", "/labgate/foo/vpn/client-2"]]);
    expect(withRecentTags(ID, described, 1_000 + RECENT_TAG_TTL_MS + 1).get("labgate:credential")).toBe(
      "/labgate/foo/vpn/client-2",
    );
    // and the write is forgotten for good
    expect(withRecentTags(ID, new Map(), 1_000).has("labgate:credential")).toBe(false);
  });

  it("touch only the instance written to", () => {
    rememberTags(ID, [{ key: "labgate:setup", value: "abc" }], 1_000);
    expect(withRecentTags("i-0f0000000000b0001", new Map(), 1_000).size).toBe(0);
  });
});
