; TSX (tree-sitter-typescript, language_tsx): the TypeScript patterns plus JSX component references.
; Capture convention: languages/README.md
; inherits: typescript

; JSX components (capitalised names only; <div> is an intrinsic element)
(jsx_opening_element
  name: (identifier) @reference
  (#match? @reference "^[A-Z]"))

(jsx_self_closing_element
  name: (identifier) @reference
  (#match? @reference "^[A-Z]"))

(jsx_opening_element
  name: (member_expression
    property: (property_identifier) @reference))

(jsx_self_closing_element
  name: (member_expression
    property: (property_identifier) @reference))
