//! Running a bundle's acceptance cases through the engines (DESIGN.md §5.4).
