import { libraryConfig } from "../../tsup.shared";

// import.meta.url is used to find prebuilds/; shims make it work in the CJS build too.
export default libraryConfig({ shims: true });
