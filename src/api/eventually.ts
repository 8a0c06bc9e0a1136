/** Part of the library (`jmp/testing`): the one polling helper, which lives in src/common for every room to use. */
export * from "../common/eventually.ts";
